"""``ssc-web users list | revoke | block | unblock LOGIN|ID`` on a running site's database:
a revoke or a block takes effect at once."""

from __future__ import annotations

import io

import pytest

from localcloud import github as stand_in
from tests.web.conftest import Site
from tests.web.test_identity import give_vm, ids_of, register, start
from web import cli


def users(site: Site, action: str, account: str | None = None) -> tuple[int, str]:
    out = io.StringIO()
    status = cli.users_command(site.config, action, account, out)
    return status, out.getvalue()


def signed_in(browser) -> bool:
    return "Signed in as" in browser.get("/").text


def test_revoke_ends_the_session_at_once(make_site):
    site = make_site()
    carol = site.browser()
    carol.sign_in("carol")
    register(carol)
    assert "/VM_start" in carol.get("/").text
    status, said = users(site, "revoke", "carol")
    assert status == 0 and "registration revoked, 1 session(s) ended" in said
    assert not signed_in(carol)
    assert site.sql("SELECT registered FROM users")[0][0] == 0
    carol.sign_in("carol")
    assert "is not allowed to start VMs" in carol.get("/").text


def test_block_ends_sessions_and_deletes_the_vm(site, alice):
    start(alice)
    [account] = ids_of(site, "alice")
    give_vm(site, account, "alice")
    status, said = users(site, "block", str(account))
    assert status == 0 and "blocked; 1 session(s) ended; delete job" in said
    assert not signed_in(alice)
    delete = site.jobs()[-1]
    assert (delete["action"], delete["github_id"], delete["state"]) == (
        "delete", account, "queued")
    alice.sign_in("alice")
    assert "is blocked on this site" in alice.get("/").text
    status, said = users(site, "unblock", "alice")
    assert status == 0 and "unblocked" in said
    assert "is blocked" not in alice.get("/").text


def test_a_block_cancels_queued_jobs(site, alice):
    start(alice)
    assert users(site, "block", "alice")[0] == 0
    [job] = site.jobs()
    assert (job["state"], job["message"]) == ("failed", "Cancelled: the account is blocked "
                                                        "on this site.")


def test_a_block_follows_the_account_through_a_rename(make_site, github):
    site = make_site(allowed_logins=("old-name",))
    browser = site.browser()
    browser.sign_in("old-name")
    assert users(site, "block", "old-name")[0] == 0
    stand_in.rename_user(github.config, "old-name", "new-name")
    browser.sign_in("new-name")
    assert "is blocked on this site" in browser.get("/").text


def test_a_block_in_the_file_is_lifted_there(make_site):
    site = make_site(blocked_logins=("alice",))
    site.browser().sign_in("alice")
    status, _ = users(site, "unblock", "alice")
    assert status == 1


def test_list(site, alice, bob):
    users(site, "block", "bob")
    status, said = users(site, "list")
    assert status == 0
    lines = said.splitlines()
    assert lines[0].startswith("id\tlogin\taccess")
    rows = {line.split("\t")[1]: line.split("\t") for line in lines[1:]}
    assert rows["alice"][2] == "listed" and rows["alice"][4] == "1"
    assert rows["bob"][2] == "blocked (ssc-web users)" and rows["bob"][4] == "0"
    assert rows["alice"][5] == "alice"  # the rule's login, bound to this account


@pytest.mark.parametrize("account, why", [
    ("nobody-here", "GitHub knows no such user"), ("-bad", "neither a GitHub login"),
    ("0", "account id"),
])
def test_unknown_accounts_are_refused(site, account, why, capsys):
    assert users(site, "block", account)[0] == 1
    assert why in capsys.readouterr().err
    assert site.sql("SELECT * FROM blocks") == []


def test_a_login_github_knows_is_looked_up(site, github):
    stand_in.approve(site.browser().start_sign_in(), "dora")  # an account, never signed in
    status, said = users(site, "block", "dora")
    assert status == 0 and "dora (id" in said
    assert len(site.sql("SELECT * FROM blocks")) == 1


def test_the_command_line(site, alice, tmp_path, monkeypatch, capsys):
    from tests.web.test_config import GOOD, minimal

    path = tmp_path / "ssc-web.toml"
    path.write_text(f'[site]\ndatabase = "{site.config.database}"\n'
                    f'[github]\nclient_id = "Ov23liTest"\n'
                    f'[jobs]\ninventory = "{minimal()["jobs"]["inventory"]}"\n')
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["users", "--config", str(path), "revoke", "alice"]) == 0
    assert "registration revoked" in capsys.readouterr().out
    assert not signed_in(alice)
    with pytest.raises(SystemExit):
        cli.main(["users", "--config", str(path), "list", "alice"])


def test_a_login_two_accounts_signed_in_with_needs_the_id(make_site, github, capsys):
    site = make_site()
    site.browser().sign_in("old-name")
    stand_in.rename_user(github.config, "old-name", "new-name")
    site.browser().sign_in("old-name")  # another account, which took the freed login
    assert users(site, "block", "old-name")[0] == 1
    assert "give the account id" in capsys.readouterr().err
    [_, second] = sorted(ids_of(site, "old-name"))
    status, said = users(site, "block", str(second))
    assert status == 0 and f"(id {second})" in said
