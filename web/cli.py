"""``ssc-web``: serve the web trigger, or run the job worker.

    ssc-web serve  --config /etc/ssc-web/ssc-web.toml   the app under waitress
    ssc-web worker --config /etc/ssc-web/ssc-web.toml   the job runner (web.jobs)
    ssc-web users  --config ... list                    who is known, and what applies
    ssc-web users  --config ... revoke|block|unblock ACCOUNT
        ACCOUNT is a GitHub login or account id (digits; @1234 for a login of digits).
        revoke: withdraw the registration and end the user's sessions at once; block: the
        user may do nothing more, their sessions end and their VM is deleted; unblock: lift
        a block made here (one in the file is lifted there). See web/users.py.

Secrets come from the environment (see web.config); the command refuses to start, with a
message saying what to fix and exit status 2, when one is missing or a default.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from web.config import ConfigError, load

log = logging.getLogger("ssc-web")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ssc-web", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, description in (("serve", "serve the web app (waitress)"),
                              ("worker", "run the job runner"),
                              ("users", "list, revoke, block or unblock users")):
        command = commands.add_parser(name, help=description, description=description)
        command.add_argument("--config", "-c", type=Path, required=True,
                             help="the TOML configuration file")
        if name == "users":
            command.add_argument("action", choices=USER_ACTIONS)
            command.add_argument("account", nargs="?", metavar="LOGIN|ID",
                                 help="a GitHub login or account id (not for list)")
    args = parser.parse_args(argv)
    if args.command == "users" and (args.action == "list") == bool(args.account):
        parser.error("users list takes no account; revoke, block and unblock take one")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s "
                                                   "%(message)s")
    try:
        config = load(args.config)
    except ConfigError as error:
        print(f"ssc-web: {error}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve(config)
    if args.command == "users":
        return users_command(config, args.action, args.account)
    from web import jobs  # the job runner: imported only by the worker

    return jobs.main(config) or 0


USER_ACTIONS = ("list", "revoke", "block", "unblock")


def users_command(config, action: str, account: str | None, out=None) -> int:
    """``ssc-web users ACTION [ACCOUNT]`` on the site's database; 1 with the reason if it
    cannot be done."""
    from web import db, users

    out = out or sys.stdout
    conn = db.connect(config.database)
    try:
        db.init(conn)
        if action == "list":
            print("id\tlogin\taccess\tregistered\tsessions\trule logins\tvm", file=out)
            for row in users.listing(conn, config):
                print("\t".join(str(value) for value in (
                    row["github_id"], row["login"] or "-", row["access"],
                    "yes" if row["registered"] else "no", row["sessions"],
                    ",".join(row["rule_logins"]) or "-", row["vm"] or "-")), file=out)
            return 0
        who = users.find(conn, config, account)
        name = f"{who.login or 'account'} (id {who.github_id})"
        if action == "revoke":
            ended = users.revoke(conn, who)
            print(f"{name}: registration revoked, {ended} session(s) ended", file=out)
        elif action == "block":
            done = users.block(conn, who)
            print(f"{name}: blocked" + "".join(f"; {item}" for item in done), file=out)
        else:
            lifted = users.unblock(conn, config, who)
            print(f"{name}: " + ("unblocked" if lifted else "was not blocked"), file=out)
        return 0
    except users.UserError as error:
        print(f"ssc-web: {error}", file=sys.stderr)
        return 1
    finally:
        conn.close()


def serve(config) -> int:
    import waitress

    from web.app import make_app

    app = make_app(config)
    # waitress warns "Task queue depth is N" for every request that waits for a thread: under
    # a burst that floods the log and slows the app down; queued requests are still served.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    log.info("serving %s on %s:%s with %d threads", config.base_url, config.host, config.port,
             config.threads)
    waitress.serve(app, host=config.host, port=config.port, threads=config.threads,
                   ident="ssc-web", max_request_body_size=1 << 20,
                   clear_untrusted_proxy_headers=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
