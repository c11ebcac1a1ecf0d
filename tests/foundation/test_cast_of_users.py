"""The fixed cast of test users (#21, as healthchecks' hc/test.py has one): who each person is, that their Datanet
roles are the ones tests/conftest.py names, that the hardening world is the same cast, and that people are made one
way: every test module reaches `cast_support` (the fixtures or `make_user`), never the user model's own
constructors, except where a module says why."""

import ast
from pathlib import Path

import pytest
from cast_support import CAST, PASSWORD

TESTS = Path(__file__).resolve().parents[1]

# Modules that make users themselves, and why; each must still need it (a stale exception fails the test too).
MAKE_THEIR_OWN = {
    # Racers run in spawned processes that import this module alone, and get_or_create makes every racer of a
    # race agree on one account.
    "hardening/ledger_race_support.py": "get_or_create",
    # The attribution suite's module-wide world: six contributors with weighed rows (its own helper's work).
    "attribution/conftest.py": "create_user",
}


@pytest.mark.django_db
def test_each_of_the_cast_is_who_conftest_says(cast, cast_roles, client):
    from django.contrib.auth import authenticate

    from datanets import selectors
    from datanets.services import datanet_create

    assert {role: user.username for role, user in cast.by_role.items()} == CAST
    assert [(u.is_staff, u.is_superuser) for u in (cast.alice, cast.bob, cast.dora, cast.charlie)] == [(False, False)] * 4
    assert (cast.staff.is_staff, cast.staff.is_superuser) == (True, True)
    for user in cast.by_role.values():
        assert authenticate(username=user.username, password=PASSWORD) == user
        assert user.emailaddress_set.get().verified and user.display_name == user.username.title()

    datanet = cast_roles(datanet_create(owner=cast.alice, name="Cast", task_type="text", visibility="private"))
    perms = {name: selectors.datanet_permissions(datanet=datanet, user=user) for name, user in vars(cast).items()
             if name != "by_role"}
    assert perms["alice"].can_manage and perms["bob"].can_curate and not perms["bob"].can_manage
    assert perms["dora"].can_contribute and not perms["dora"].can_curate
    assert not perms["charlie"].can_view


@pytest.mark.django_db
def test_make_user_is_for_people_outside_the_cast(make_user):
    erin = make_user("erin")
    assert (erin.username, erin.is_staff, erin.is_superuser) == ("erin", False, False)
    for name in CAST.values():
        with pytest.raises(AssertionError, match="is in the cast"):
            make_user(name)


@pytest.mark.django_db
def test_the_hardening_world_is_the_cast(django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS / "hardening"))  # as bench/fuzz.py and tests/hardening/ import it
    from hardening_support import build_world

    world = build_world(run_on_commit=django_capture_on_commit_callbacks)
    assert {role: user.username for role, user in world.users.items()} == CAST
    assert world.users["staff"].is_superuser
    datanet = world.datanets["private"]["datanet"]
    roles = dict(datanet.memberships.values_list("user__username", "role"))
    assert (datanet.owner.username, roles["bob"], roles["dora"]) == ("alice", "curator", "contributor")
    assert "charlie" not in roles


def makes_users(source: str) -> set[str]:
    """How a module makes users itself: `create_user`/`create_superuser` calls, or `get_or_create`/`create` on
    `get_user_model().objects` or `User.objects`."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr in ("create_user", "create_superuser"):
            found.add(node.func.attr)
        elif node.func.attr in ("create", "get_or_create") and isinstance(node.func.value, ast.Attribute):
            manager_of = node.func.value.value
            if (isinstance(manager_of, ast.Call) and getattr(manager_of.func, "id", "") == "get_user_model") or (
                    isinstance(manager_of, ast.Name) and manager_of.id == "User"):
                found.add(node.func.attr)
    return found


def test_people_are_made_one_way():
    assert makes_users("get_user_model().objects.create_user(username='x')") == {"create_user"}
    assert makes_users("User.objects.create(username='x')") == {"create"}
    assert makes_users("get_user_model().objects.get_or_create(username='x')") == {"get_or_create"}
    assert makes_users("Record.objects.create(text='x')") == set()
    found = {}
    for path in sorted(TESTS.rglob("*.py")):
        relative = str(path.relative_to(TESTS))
        if relative != "cast_support.py" and (how := makes_users(path.read_text(encoding="utf-8"))):
            found[relative] = how
    unexplained = {path: how for path, how in found.items() if path not in MAKE_THEIR_OWN}
    assert not unexplained, f"Make people with the cast's fixtures or make_user (tests/cast_support.py): {unexplained}"
    stale = {path for path, how in MAKE_THEIR_OWN.items() if how not in found.get(path, set())}
    assert not stale, f"These no longer make their own users: drop them from MAKE_THEIR_OWN: {stale}"
