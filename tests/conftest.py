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
hundreds of contributors) makes them with `make_user` and says why. Everyone is made by `cast_support` (also
used where fixtures cannot reach, as the hardening world that bench/fuzz.py shares).

Engine tests (tests/engine_*/, tests/chain/) use none of this and never touch the database."""

import os
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from cast_support import cast_member_create

# Playwright's sync API runs an event loop in the test thread; Django's ORM refuses to run under one
# unless told that this is deliberate (it is: each call still runs synchronously).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
SCREENSHOT_DIR = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


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
    """`make_user(name, staff=False)`: someone a test needs beyond the cast (say why where it is called)."""
    from cast_support import CAST, person_create

    def make(name, *, staff=False):
        assert name not in CAST.values(), f"{name} is in the cast: ask for the `{name}` fixture instead"
        return person_create(name, staff=staff)

    return make


@pytest.fixture
def alice(db):
    """The owner: of her Datanets, her fine-tunes and her model versions."""
    return cast_member_create("alice")


@pytest.fixture
def bob(db):
    """The curator of alice's Datanets (once `cast_roles` gives him the membership)."""
    return cast_member_create("bob")


@pytest.fixture
def dora(db):
    """The contributor of alice's Datanets (a contributor member once `cast_roles` runs)."""
    return cast_member_create("dora")


@pytest.fixture
def charlie(db):
    """The stranger: a member of nothing, owner of nothing."""
    return cast_member_create("charlie")


@pytest.fixture
def staff(db):
    """The site's admin: staff and superuser (every admin page and admin action)."""
    return cast_member_create("staff")


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


# --- A frozen clock. Tests that bucket by UTC day or ISO week (Monday first) must not read the real clock: they
# would pass or fail with the day they run on (a Monday once broke the insights history test: the current week
# then holds only today). `frozen_clock` stops Django's clock at noon UTC on one day; a test that asks for
# `calendar_day` runs once on each of CALENDAR_DAYS with the clock stopped there.
CALENDAR_DAYS = (
    date(2026, 12, 28),  # Monday, ISO week 53 of 2026 (a 53-week year): every weekday of that week follows
    date(2026, 12, 29),  # Tuesday
    date(2026, 12, 30),  # Wednesday
    date(2026, 12, 31),  # Thursday, last day of a month and of a year
    date(2027, 1, 1),  # Friday, first day of a year, still in ISO week 53 of 2026 (its Monday is in 2026)
    date(2027, 1, 2),  # Saturday
    date(2027, 1, 3),  # Sunday, last day of ISO week 53
    date(2027, 1, 4),  # Monday, ISO week 1 of 2027: the current week holds only today
    date(2026, 11, 30),  # Monday, last day of a month
    date(2026, 12, 1),  # Tuesday, first day of a month, its week begun in the month before
    date(2028, 2, 29),  # Tuesday, a leap day
    date(2028, 3, 1),  # Wednesday, the day after it (yesterday is 29 February)
)
# The day of tests that use `frozen_clock` without `calendar_day`; LINEAGE_TEST_TODAY=YYYY-MM-DD runs them on
# another one.
CLOCK_DEFAULT_DAY = date.fromisoformat(os.environ.get("LINEAGE_TEST_TODAY") or "2026-11-25")  # a Wednesday


class FrozenClock:
    """`now()` replaces `django.utils.timezone.now`. Each reading is one microsecond after the last, so rows
    written one after another keep their order as under a real clock; a test would need billions of readings
    to leave the day it started at noon."""

    def __init__(self, instant: datetime):
        self.set(instant)

    def set(self, instant: datetime) -> None:
        self._instant = instant

    def now(self) -> datetime:
        self._instant += timedelta(microseconds=1)
        return self._instant

    @property
    def today(self) -> date:
        return self._instant.astimezone(UTC).date()


@pytest.fixture(params=CALENDAR_DAYS, ids=lambda day: f"{day:%a-%Y-%m-%d}")
def calendar_day(request):
    """One of CALENDAR_DAYS; `frozen_clock` (which the test must use too) stops the clock at its noon."""
    return request.param


@pytest.fixture
def frozen_clock(request, monkeypatch):
    """Django's clock stopped at noon UTC on `calendar_day` when the test asks for it, else on
    CLOCK_DEFAULT_DAY. Replaced: `django.utils.timezone.now`, so what reads it at call time (services,
    `auto_now`/`auto_now_add`, `localdate`) and every model field whose default is `timezone.now` (the field
    holds the function itself, so patching the module alone would leave those rows on the real clock).
    List it before any fixture that writes rows (or use it from an autouse fixture or `usefixtures`)."""
    from django.apps import apps
    from django.utils import timezone

    day = request.getfixturevalue("calendar_day") if "calendar_day" in request.fixturenames else CLOCK_DEFAULT_DAY
    clock = FrozenClock(datetime.combine(day, time(12), tzinfo=UTC))
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", clock.now)
    for model in apps.get_models():
        for field in model._meta.local_fields:
            if field.default is real_now:
                # Field caches its default's callable (`_get_default`): patched first, so that what monkeypatch
                # restores is the real clock's, not one cached from the patched default (a leak into later tests).
                monkeypatch.setattr(field, "_get_default", clock.now)
                monkeypatch.setattr(field, "default", clock.now)
    return clock
