"""The one way a test makes a person: the fixed cast of tests/conftest.py (alice owns, bob curates, dora
contributes, charlie is a stranger, staff is staff) and anyone a test needs beyond it. The fixtures use it, and
so does code that runs outside pytest's fixtures (`tests/hardening/hardening_support.build_world`, shared with
`bench/fuzz.py`), so every suite's people are made alike: a verified primary e-mail, the cast's password, a
display name from the user name."""

PASSWORD = "correct-horse-battery-staple"
# role -> user name: the cast, as `cast.by_role` and the permission matrices' rows name them.
CAST = {"owner": "alice", "curator": "bob", "contributor": "dora", "stranger": "charlie", "staff": "staff"}


def person_create(name: str, *, staff: bool = False, superuser: bool = False):
    """A signed-up person who can sign in at once: `<name>@example.org`, verified, with PASSWORD."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(
        username=name, email=f"{name}@example.org", password=PASSWORD, display_name=name.title(), is_staff=staff,
        is_superuser=superuser,
    )
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def cast_member_create(name: str):
    """One person of the cast, in their role: staff is the site's admin (staff and superuser)."""
    assert name in CAST.values(), f"{name} is not in the cast: make them with person_create and say why"
    return person_create(name, staff=name == "staff", superuser=name == "staff")


def cast_create() -> dict:
    """The whole cast, by role ({"owner": alice, "curator": bob, ...}); their Datanet roles are memberships,
    given once a Datanet exists."""
    return {role: cast_member_create(name) for role, name in CAST.items()}
