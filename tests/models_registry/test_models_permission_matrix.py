"""Who may do what on every ModelFactory API URL: a declared policy table checked against real requests.

Every URL under `/api/v1/fine-tunes/`, `/api/v1/models/` and `/api/v1/base-models/` is enumerated from the
URL resolver; a URL or REST method without a row in POLICY fails `test_every_modelfactory_url_has_a_policy`.

The world (one real MiniLM fine-tune, by alice): her model version and two of her fine-tunes, checked in
two states. "first": the model is not deployed, the second job is queued. "then": the model is deployed
(free, downloads not allowed), the queued job has been cancelled. A public Datanet with open training
access is there to launch from.

Roles (the cast of tests/conftest.py): owner (alice's browser session), stranger (charlie's session),
anonymous, the owner's API keys with scope `read` and with scope `train`, and the stranger's key with every
scope. Each request runs in a savepoint that is rolled back, so one role's write never changes what the next
role finds.
"""

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from matrix_support import model_request_bodies
from rest_framework.test import APIClient
from transaction_support import rollback_block

pytestmark = pytest.mark.django_db

ROLES = ("owner", "stranger", "anonymous", "key:read", "key:train", "stranger:all")
PREFIXES = ("api/v1/fine-tunes/", "api/v1/models/", "api/v1/base-models/")
PUBLIC_READ = "200 200 200 200 403 200 | 200 200 200 200 403 200"
OWNER_ONLY_READ = "200 404 401 200 403 404 | 200 404 401 200 403 404"

# (url name, method): "first: owner stranger anonymous key:read key:train stranger:all | then: the same"
POLICY = {
    ("base-models-api-list", "GET"): PUBLIC_READ,
    ("fine-tunes-api-list", "GET"): "200 200 401 200 403 200 | 200 200 401 200 403 200",
    ("fine-tunes-api-list", "POST"): "201 201 401 403 201 201 | 201 201 401 403 201 201",
    ("fine-tunes-api-detail", "GET"): OWNER_ONLY_READ,
    # queued: cancellable, not resumable | cancelled: the other way round
    ("fine-tunes-api-cancel", "POST"): "200 404 401 403 200 404 | 409 404 401 403 409 404",
    ("fine-tunes-api-resume", "POST"): "409 404 401 403 409 404 | 202 404 401 403 202 404",
    ("models-api-list", "GET"): PUBLIC_READ,
    # not deployed: the owner's alone | deployed: public to read, the owner's to change
    ("models-api-detail", "GET"): "200 404 404 200 403 404 | 200 200 200 200 403 200",
    ("models-api-detail", "PATCH"): "200 404 404 403 200 404 | 200 403 401 403 200 403",
    ("models-api-adapter", "GET"): "200 404 404 200 403 404 | 200 403 403 200 403 403",
    ("models-api-deploy", "POST"): "200 404 404 403 200 404 | 200 403 401 403 200 403",
    ("models-api-undeploy", "POST"): "200 404 404 403 200 404 | 200 403 401 403 200 403",
}


def modelfactory_urls():
    """(route, name, callback) of every ModelFactory API URL, from the live resolver."""

    def walk(patterns, prefix):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.name, pattern.callback

    return [url for url in walk(get_resolver().url_patterns, "") if url[0].startswith(PREFIXES)]


def test_every_modelfactory_url_has_a_policy():
    urls = modelfactory_urls()
    assert len(urls) >= 9
    assert all(name for _, name, _ in urls), "Name every ModelFactory API URL so the policy can refer to it"
    methods = {(name, m.upper()) for _, name, callback in urls
               for m in ("get", "post", "put", "patch", "delete") if hasattr(callback.cls, m)}
    assert not sorted(methods - set(POLICY)), f"Add POLICY rows for: {sorted(methods - set(POLICY))}"
    assert not sorted(set(POLICY) - methods), f"POLICY rows for URLs that no longer exist: {sorted(set(POLICY) - methods)}"
    for expectation in POLICY.values():
        first, then = expectation.split("|")
        assert len(first.split()) == len(then.split()) == len(ROLES)


@pytest.fixture
def world(alice, charlie, publish, intent_rows, api_key_for, settings, django_capture_on_commit_callbacks):
    from models_registry import services

    settings.ATTRIBUTION_BUILD_ON_REGISTER = False
    version = publish(alice, intent_rows(1))
    base = services.base_model_ensure_default()
    fast = {"epochs": 1, "batch_size": 8, "max_seq_length": 32, "eval_fraction": 0.25}
    with django_capture_on_commit_callbacks(execute=True):
        trained = services.fine_tune_create(owner=alice, name="Matrix", base_model=base, datanet_versions=[version],
                                            **fast)
    trained.refresh_from_db()
    assert trained.state == "succeeded", trained.error
    with django_capture_on_commit_callbacks(execute=False):  # queued, never delivered
        queued = services.fine_tune_create(owner=alice, name="Later", base_model=base, datanet_versions=[version],
                                           **fast)
    clients = {}
    for role in ROLES:
        client = APIClient()
        if role in ("owner", "stranger"):
            client.force_login(alice if role == "owner" else charlie)
        elif role != "anonymous":
            user, scopes = (charlie, django_settings.API_KEY_SCOPES) if role == "stranger:all" else (alice, [role[4:]])
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(user, *scopes)[1]}")
        clients[role] = client
    return {"model": trained.model_version, "job": queued, "version": version, "clients": clients, "alice": alice}


def _check_half(world, half):
    bodies = model_request_bodies(datanet_slug=world["version"].datanet.slug, version_number=world["version"].number)
    routes = {name: route for route, name, _ in modelfactory_urls()}
    mismatches = []
    for (name, method), expectation in POLICY.items():
        kwargs = {key: value for key, value in (("slug", world["model"].slug), ("job_id", world["job"].pk))
                  if f":{key}>" in routes[name]}
        path = reverse(name, kwargs=kwargs)
        for role, expected in zip(ROLES, expectation.split("|")[half].split()):
            with rollback_block():
                client = world["clients"][role]
                if method == "GET":
                    response = client.get(path)
                else:
                    response = getattr(client, method.lower())(path, bodies.get((name, method), {}), format="json")
                if getattr(response, "streaming", False):
                    b"".join(response.streaming_content)
                transaction.set_rollback(True)  # the next role finds the same world
            if str(response.status_code) != expected:
                mismatches.append(f"{method} {path} as {role}: expected {expected}, got {response.status_code}")
    return mismatches


def test_permission_matrix(world):
    from models_registry import services

    mismatches = _check_half(world, 0)
    services.model_version_set_deployed(version=world["model"], actor=world["alice"], deployed=True)
    services.fine_tune_cancel(job=world["job"], actor=world["alice"])
    mismatches += _check_half(world, 1)
    assert not mismatches, "\n".join(mismatches)
