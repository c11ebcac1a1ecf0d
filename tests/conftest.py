"""Shared fixtures: one fixed cast of users, API clients with keys, and a Playwright browser on Debian chromium.

The cast (as healthchecks' hc/test.py has one): every suite uses these people in these roles, so a reader knows
from a name alone who someone is and what they may do.

    fixture   role
    alice     owns: her Datanets, her fine-tunes and her model versions
    bob       curates alice's Datanets (their curator member, given by `cast_roles`)
    dora      contributes to alice's Datanets (their contributor member, given by `cast_roles`)
    charlie   a stranger: signed in, a member of nothing, owner of nothing (he may still upload to a
              Datanet open to anyone, as any signed-in person may)
    staff     the site's admin: staff and superuser, as the demo's admin

Roles on a Datanet are memberships, so they exist once the Datanet does: `cast_roles(datanet)` gives bob and
dora theirs on a Datanet alice owns, and `cast.by_role` maps role names to people (the permission matrices'
rows). A test that needs someone outside the cast (a staff member without permissions, a second owner,
hundreds of contributors) makes them with `make_user` and says why.

Engine tests (tests/engine_*/, tests/chain/) use none of this and never touch the database."""

import os
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test thread; Django's ORM refuses to run under one
# unless told that this is deliberate (it is: each call still runs synchronously).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
SCREENSHOT_DIR = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
PASSWORD = "correct-horse-battery-staple"


def _django_active(request) -> bool:
    # Engine tests run without Django too (`-p no:django`); the fixtures below are then no-ops.
    return request.config.pluginmanager.hasplugin("django")


@pytest.fixture(autouse=True)
def _django_test_environment(request, tmp_path):
    """Tasks run in-process (the worker round-trip tests switch this off explicitly), media and caches
    live in the test's own directory, and throttle counters start at zero."""
    if not _django_active(request):
        yield
        return
    from django.core.cache import cache

    from lineage.celery import app

    settings = request.getfixturevalue("settings")
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.DATANETS_CACHE_DIR = tmp_path / "cache"
    settings.TRAINING_WORK_DIR = tmp_path / "training"
    cache.clear()
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def make_user(db):
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    def make(name, *, staff=False):
        user = get_user_model().objects.create_user(
            username=name, email=f"{name}@example.org", password=PASSWORD, display_name=name.title(), is_staff=staff
        )
        EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
        return user

    return make


@pytest.fixture
def alice(make_user):
    """The owner: of her Datanets, her fine-tunes and her model versions."""
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    """The curator of alice's Datanets (once `cast_roles` gives him the membership)."""
    return make_user("bob")


@pytest.fixture
def dora(make_user):
    """The contributor of alice's Datanets (a contributor member once `cast_roles` runs)."""
    return make_user("dora")


@pytest.fixture
def charlie(make_user):
    """The stranger: a member of nothing, owner of nothing."""
    return make_user("charlie")


@pytest.fixture
def staff(make_user):
    """The site's admin: staff and superuser (every admin page and admin action)."""
    user = make_user("staff", staff=True)
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    return user


@pytest.fixture
def cast_roles(alice, bob, dora):
    """`cast_roles(datanet)`: the cast's roles on a Datanet alice owns (bob its curator, dora its contributor
    member; charlie stays a stranger), given through the membership service. Returns the Datanet."""
    from datanets.services import membership_set

    def give(datanet):
        assert datanet.owner_id == alice.pk, "the cast's roles are on alice's Datanets"
        membership_set(datanet=datanet, actor=alice, user=bob, role="curator")
        membership_set(datanet=datanet, actor=alice, user=dora, role="contributor")
        return datanet

    return give


@pytest.fixture
def cast(alice, bob, dora, charlie, staff):
    """The whole cast, by name and by role (`cast.by_role["curator"]` is bob)."""
    from types import SimpleNamespace

    by_role = {"owner": alice, "curator": bob, "contributor": dora, "stranger": charlie, "staff": staff}
    return SimpleNamespace(alice=alice, bob=bob, dora=dora, charlie=charlie, staff=staff, by_role=by_role)


@pytest.fixture
def api_key_for(db):
    """Issue a real key through the service and return (ApiKey, secret)."""
    from accounts.services import api_key_create

    def issue(user, *scopes, name="test key"):
        issued = api_key_create(user=user, name=name, scopes=list(scopes) or ["read"])
        return issued.api_key, issued.secret

    return issue


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def key_client(api_key_for):
    """An APIClient authenticated by a fresh key with the given scopes."""
    from rest_framework.test import APIClient

    def client_for(user, *scopes):
        _, secret = api_key_for(user, *scopes)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    return client_for


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"Debian chromium is not installed at {CHROMIUM}: run `bash .ci/system-packages` (`make test` does).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot(page):
    """Save a screenshot for the README when LINEAGE_SCREENSHOTS=1 (kept off so tests leave no diffs)."""

    def take(name):
        if os.environ.get("LINEAGE_SCREENSHOTS") == "1":
            SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=True)

    return take


# --- A small, clearly separable labelled dataset and a one-call "publish a Datanet version" helper, shared by
# the ModelFactory, attribution and serving tests.
BILLING = ["I was charged twice", "refund my payment", "my invoice is wrong", "the card payment failed",
           "why was I billed again", "cancel the charge on my card"]
SHIPPING = ["where is my parcel", "the courier lost my package", "delivery is late", "tracking number does not work",
            "parcel arrived damaged", "change my delivery address"]


def make_intent_rows(repeat=4):
    rows = [{"text": f"{t} please help {i}", "label": "billing"} for i, t in enumerate(BILLING * repeat)]
    rows += [{"text": f"{t} please help {i}", "label": "shipping"} for i, t in enumerate(SHIPPING * repeat)]
    return rows


@pytest.fixture
def intent_rows():
    """Two clearly separable support intents, `repeat` × 12 rows."""
    return make_intent_rows


@pytest.fixture
def publish(django_capture_on_commit_callbacks):
    """Create a Datanet, contribute rows through the real validation path, accept and publish them."""

    def make(owner, rows, *, task_type="text-classification", labels=("billing", "shipping"), name="Intents",
             visibility="public", contributor=None):
        from datanets import services as datanet_services

        datanet = datanet_services.datanet_create(
            owner=owner, name=name, task_type=task_type, visibility=visibility,
            label_set=list(labels) if task_type == "text-classification" else [],
        )
        with django_capture_on_commit_callbacks(execute=True):
            datanet_services.contribution_create_from_rows(datanet=datanet, contributor=contributor or owner, rows=rows)
        datanet_services.records_review(datanet=datanet, reviewer=owner,
                                        record_ids=datanet.records.values_list("pk", flat=True), decision="accept")
        return datanet_services.version_publish(datanet=datanet, actor=owner)

    return make


# --- The chain: one real in-process py-evm chain per session, token and distributor deployed, reverted to
# its snapshot after each test (used by the rewards, insights and story suites).


@pytest.fixture(scope="session")
def _chain_world():
    from rewards.chain import ChainClient, deploy_rewards

    client = ChainClient.in_process()
    deployed = deploy_rewards(client, supply=10**9 * 10**18)
    return client, deployed


@pytest.fixture
def chain(db, _chain_world, settings):
    from types import SimpleNamespace

    from rewards.chainio import deployment_record, set_chain_client

    client, deployed = _chain_world
    snapshot = client.snapshot()
    set_chain_client(client)
    settings.CHAIN_ID = client.chain_id
    settings.REWARDS_RELAY_THRESHOLD = 0
    deployment = deployment_record(client=client, token_address=deployed.token.address,
                                   distributor_address=deployed.distributor.address,
                                   deployed_at_block=deployed.deployed_at_block)
    accounts = client.local_chain.accounts
    yield SimpleNamespace(client=client, deployment=deployment, token=deployed.token,
                          distributor=deployed.distributor, treasury=accounts[0], wallets=accounts[2:9])
    set_chain_client(None)
    client.revert_to_snapshot(snapshot)
