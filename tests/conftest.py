"""Shared fixtures: a fixed cast of users (as healthchecks' hc/test.py does), API clients with keys,
and a Playwright browser on Debian chromium.

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
    """A contributor (and, in Datanet tests, the owner of Datanets she creates)."""
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    """Bob is a second user: curator where a test makes him one, stranger otherwise."""
    return make_user("bob")


@pytest.fixture
def charlie(make_user):
    """Charlie belongs to nothing: the stranger."""
    return make_user("charlie")


@pytest.fixture
def staff(make_user):
    return make_user("staff", staff=True)


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
