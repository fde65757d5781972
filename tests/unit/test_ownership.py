"""Which server is a user's VM (module utility ownership): by the GitHub account id, with the
VMs named by login before ids still found, and never another account's."""

from ansible_collections.ssc.repo2docker.plugins.module_utils.ownership import (
    find_owned,
    is_user_vm,
    legacy_vm_name,
    vm_name_for_id,
)


def server(name: str, **metadata) -> dict:
    return {"id": f"id-{name}", "name": name, "metadata": metadata}


BY_ID = server("ssc-r2d-42", ssc_r2d_owner_id="42", ssc_r2d_owner_login="ada")
LEGACY = server("ssc-r2d-ada", ssc_r2d_owner="ada")
LEGACY_MARKED = server("ssc-r2d-ada", ssc_r2d_owner="ada", ssc_r2d_owner_id="42",
                       ssc_r2d_owner_login="ada")


def test_names():
    assert vm_name_for_id(42) == "ssc-r2d-42"
    assert legacy_vm_name("Ada-") == "ssc-r2d-ada-"


def test_the_vm_marked_with_the_id_is_the_accounts_under_any_login():
    assert find_owned([BY_ID], 42, "ada") == (BY_ID, False)
    assert find_owned([BY_ID], "42", "ada-renamed") == (BY_ID, False)
    assert find_owned([LEGACY_MARKED], "42", "ada-renamed") == (LEGACY_MARKED, False)


def test_a_vm_named_by_login_is_its_logins_until_marked_with_an_id():
    assert find_owned([LEGACY], "42", "Ada") == (LEGACY, True)
    assert find_owned([LEGACY], "42", "bob") == (None, False)
    # a new holder of the freed login finds none of the marked VM
    assert find_owned([LEGACY_MARKED], "77", "ada") == (None, False)
    # a VM of that name whose older owner mark names another login is not adopted
    assert find_owned([server("ssc-r2d-ada", ssc_r2d_owner="eve")], "42", "ada") == (None, False)


def test_the_vm_named_by_id_comes_first_and_other_ids_are_never_found():
    other = server("ssc-r2d-7", ssc_r2d_owner_id="7")
    assert find_owned([LEGACY_MARKED, other, BY_ID], "42", "ada") == (BY_ID, False)
    assert find_owned([other], "42", "ada") == (None, False)
    assert find_owned([], "42", "ada") == (None, False)


def test_user_vms_are_marked_by_id_or_by_the_older_login():
    assert is_user_vm(BY_ID) and is_user_vm(LEGACY)
    assert not is_user_vm(server("builder"))
