"""Who may do what on every URL of the project: a declared policy table checked against real requests.

Every URL pattern is enumerated from the live resolver (pages, the REST API, the OpenAI-compatible API,
allauth, the admin). A URL without a row in POLICY (or, under `admin/`, without the admin rule) fails
`test_every_url_has_a_policy`, and so does a REST view method without a row: a new page or endpoint
cannot ship without someone deciding who may use it. (`tests/datanets/test_datanets_permission_matrix.py`
checks the Datanets URLs on a public and a private Datanet; this one covers every URL, Datanet URLs on
the private Datanet.)

The world is made once per module through the services: an owner (alice), a curator (bob), a
contributor member (dora), a stranger (charlie) and staff (a superuser, as the demo admin); a public and a
private Datanet with versions, a contribution waiting for review and a pending training-access request;
a MiniLM LoRA model fine-tuned by the owner on the private Datanet (deployed, priced, indexed), an
attribution receipt and a paid inference by the contributor. API keys: one per scope, all the owner's.

Roles, in the order of each expectation: anonymous, stranger, contributor, curator, owner, staff (browser
sessions), then the owner's API keys with one scope each: read, contribute, train, infer. Pages declare
the six session roles; an API key is not a browser session, so on a page every key must get exactly what
anonymous gets. Outcomes: a status code, `login` (redirect to the sign-in page) or `admin-login`
(redirect to the admin's sign-in). Each request runs in a savepoint that is rolled back.

`test_private_datanet_is_invisible_to_non_members` then reads every GET URL as anonymous, as the stranger
and with the stranger's API key, and asserts that no answer names the private Datanet.
"""

import re

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from hardening_support import build_world
from matrix_support import datanet_request_bodies, model_request_bodies
from rest_framework.test import APIClient
from transaction_support import rollback_block

SESSION_ROLES = ("anonymous", "stranger", "contributor", "curator", "owner", "staff")
KEY_ROLES = ("key:read", "key:contribute", "key:train", "key:infer")
ROLES = SESSION_ROLES + KEY_ROLES

PUBLIC = "200 200 200 200 200 200"
MEMBERS = "404 404 200 200 200 404"  # a private Datanet's public-looking pages: members only, others 404
API_MEMBERS_READ = "404 404 200 200 200 404 200 403 403 403"  # + the owner's keys: only `read` reads
API_SIGNED_IN_READ = "401 200 200 200 200 200 200 403 403 403"

# (url name, method): expectations in ROLES order (pages: the six session roles).
POLICY = {
    # --- Site, health, metrics ---
    ("home", "GET"): PUBLIC,
    ("healthz", "GET"): PUBLIC,
    ("metrics", "GET"): "403 403 403 403 403 200",  # staff, or the scraper's METRICS_TOKEN (tests/foundation)
    # --- allauth (third party: what a signed-in person gets on the sign-in pages is a redirect) ---
    ("account_login", "GET"): "200 302 302 302 302 302",
    ("account_logout", "GET"): "302 200 200 200 200 200",
    ("account_inactive", "GET"): PUBLIC,
    ("account_signup", "GET"): "200 302 302 302 302 302",
    ("account_reauthenticate", "GET"): "login 200 200 200 200 200",
    ("account_email", "GET"): "login 200 200 200 200 200",
    ("account_email_verification_sent", "GET"): PUBLIC,
    ("account_change_password", "GET"): "login 200 200 200 200 200",
    ("account_set_password", "GET"): "login 302 302 302 302 302",
    ("account_reset_password", "GET"): PUBLIC,
    ("account_confirm_login_code", "GET"): "login 302 302 302 302 302",
    ("account_request_reauthentication_code", "GET"): "login 200 200 200 200 200",
    ("account_confirm_reauthentication_code", "GET"): "login 302 302 302 302 302",
    ("account_confirm_email", "GET"): PUBLIC,
    ("account_reset_password_from_key_done", "GET"): PUBLIC,
    ("account_reset_password_from_key", "GET"): PUBLIC,
    ("account_reset_password_done", "GET"): PUBLIC,
    # --- Accounts: API keys (each person's own; another's key is 404) ---
    ("accounts:api_keys", "GET"): "login 200 200 200 200 200",
    ("accounts:api_keys", "POST"): "login 302 302 302 302 302",  # a created key: POST/redirect/GET
    ("accounts:api_key_revoke", "POST"): "login 404 404 404 302 404",
    ("api-me", "GET"): "401 200 200 200 200 200 200 403 403 403",
    # --- Datanets pages, on the private Datanet ---
    ("datanets:index", "GET"): PUBLIC,
    ("datanets:create", "GET"): "login 200 200 200 200 200",
    ("datanets:detail", "GET"): MEMBERS,
    ("datanets:settings", "GET"): "login 404 403 403 200 404",
    ("datanets:members", "POST"): "login 404 403 403 302 404",
    ("datanets:contribute", "GET"): "login 404 200 200 200 404",
    ("datanets:contribute", "POST"): "login 404 302 302 302 404",
    ("datanets:contribution", "GET"): "login 404 200 200 200 404",
    ("datanets:contribution_errors_csv", "GET"): "login 404 200 200 200 404",
    ("datanets:review", "GET"): "login 404 403 200 200 404",
    ("datanets:review_decide", "POST"): "login 404 403 302 302 404",
    ("datanets:review_row_decide", "POST"): "login 404 403 302 302 404",
    ("datanets:my_contributions", "GET"): "login 200 200 200 200 200",  # one's own uploads, any Datanet
    ("datanets:versions", "GET"): MEMBERS,
    ("datanets:versions", "POST"): "404 404 403 302 302 404",
    ("datanets:version_diff", "GET"): MEMBERS,
    ("datanets:version", "GET"): MEMBERS,
    ("datanets:version_verify", "POST"): "login 404 200 200 200 404",
    ("datanets:version_download", "GET"): "404 404 403 200 200 404",
    ("datanets:rows", "GET"): MEMBERS,
    ("datanets:contributors", "GET"): MEMBERS,
    ("datanets:contributor", "GET"): MEMBERS,
    ("datanets:access_request", "POST"): "login 404 302 302 302 404",
    ("datanets:access_decide", "POST"): "login 404 403 403 302 404",
    ("retrieval:version_search", "GET"): MEMBERS,  # a Datanet of rows: the page says it cannot be searched
    # --- Datanets API, on the private Datanet ---
    ("datanets-api-list", "GET"): "200 200 200 200 200 200 200 403 403 403",
    ("datanets-api-list", "POST"): "401 201 201 201 201 201 403 201 403 403",
    ("datanets-api-detail", "GET"): API_MEMBERS_READ,
    ("datanets-api-detail", "PATCH"): "404 404 403 403 200 404 403 200 403 403",
    ("datanets-api-stats", "GET"): API_MEMBERS_READ,
    ("datanets-api-leaderboard", "GET"): API_MEMBERS_READ,
    ("datanets-api-members", "GET"): API_MEMBERS_READ,
    ("datanets-api-members", "POST"): "404 404 403 403 200 404 403 200 403 403",
    ("datanets-api-member", "DELETE"): "404 404 403 403 204 404 403 204 403 403",
    ("datanets-api-contributions", "GET"): API_MEMBERS_READ,
    ("datanets-api-contributions", "POST"): "404 404 202 202 202 404 403 202 403 403",
    ("datanets-api-contribution", "GET"): API_MEMBERS_READ,
    ("datanets-api-contribution-errors", "GET"): API_MEMBERS_READ,
    ("datanets-api-contribution-errors-csv", "GET"): API_MEMBERS_READ,
    ("datanets-api-records", "GET"): API_MEMBERS_READ,
    ("datanets-api-records-review", "POST"): "404 404 403 200 200 404 403 200 403 403",
    ("datanets-api-versions", "GET"): API_MEMBERS_READ,
    ("datanets-api-versions", "POST"): "404 404 403 201 201 404 403 201 403 403",
    ("datanets-api-versions-diff", "GET"): API_MEMBERS_READ,
    ("datanets-api-version", "GET"): API_MEMBERS_READ,
    ("datanets-api-version-verify", "GET"): API_MEMBERS_READ,
    ("datanets-api-version-download", "GET"): "404 404 403 200 200 404 200 403 403 403",
    ("datanets-api-access-requests", "GET"): API_MEMBERS_READ,
    ("datanets-api-access-requests", "POST"): "404 404 201 400 400 404 403 403 400 403",
    ("datanets-api-access-request-decide", "POST"): "404 404 403 403 200 404 403 200 403 403",
    ("datanets-api-version-search", "GET"): "404 404 400 400 400 404 400 403 403 403",  # rows: not_searchable
    # --- ModelFactory pages (the model is deployed: its card is public; the job is the owner's) ---
    ("models_registry:index", "GET"): PUBLIC,
    ("models_registry:job_create", "GET"): "login 200 200 200 200 200",
    ("models_registry:job", "GET"): "login 404 404 404 200 404",
    ("models_registry:job_cancel", "POST"): "login 404 404 404 302 404",
    ("models_registry:version", "GET"): PUBLIC,
    ("models_registry:version", "POST"): "403 403 403 403 302 403",
    ("models_registry:version_deploy", "POST"): "login 403 403 403 302 302",
    ("models_registry:version_download", "GET"): "403 403 403 403 200 403",
    # --- ModelFactory API: the job is the owner's (404 to others); the model is deployed (public to read,
    # the owner's to change; staff may deploy and undeploy) and priced, downloads not allowed; launching
    # trains on the private Datanet (approval-only: the contributor's request is still pending) ---
    ("base-models-api-list", "GET"): "200 200 200 200 200 200 200 403 403 403",
    ("fine-tunes-api-list", "GET"): API_SIGNED_IN_READ,
    ("fine-tunes-api-list", "POST"): "401 400 400 201 201 400 403 403 201 403",
    ("fine-tunes-api-detail", "GET"): "401 404 404 404 200 404 200 403 403 403",
    ("fine-tunes-api-cancel", "POST"): "401 404 404 404 409 404 403 403 409 403",  # it has succeeded
    ("fine-tunes-api-resume", "POST"): "401 404 404 404 409 404 403 403 409 403",
    ("models-api-list", "GET"): "200 200 200 200 200 200 200 403 403 403",
    ("models-api-detail", "GET"): "200 200 200 200 200 200 200 403 403 403",
    ("models-api-detail", "PATCH"): "401 403 403 403 200 403 403 403 200 403",
    ("models-api-adapter", "GET"): "403 403 403 403 200 403 200 403 403 403",
    ("models-api-deploy", "POST"): "401 403 403 403 200 200 403 403 200 403",
    ("models-api-undeploy", "POST"): "401 403 403 403 200 200 403 403 200 403",
    # --- Retrieval apps API: none deployed in this world (the slug names no app: 404 before any scope check);
    # listing is public to read, deploying needs the `train` scope and a valid body ---
    ("retrieval-apps-api-list", "GET"): "200 200 200 200 200 200 200 403 403 403",
    ("retrieval-apps-api-list", "POST"): "401 400 400 400 400 400 403 403 400 403",
    ("retrieval-apps-api-detail", "GET"): "404 404 404 404 404 404 404 404 404 404",
    ("retrieval-apps-api-detail", "PATCH"): "404 404 404 404 404 404 404 404 404 404",
    ("retrieval-apps-api-detail", "DELETE"): "404 404 404 404 404 404 404 404 404 404",
    # --- Attribution (receipts are capability links: whoever holds the id reads the attribution) ---
    ("attribution:index", "GET"): PUBLIC,
    ("attribution:receipt", "GET"): PUBLIC,
    ("attribution:valuation", "GET"): PUBLIC,
    ("attribution-api-create", "POST"): "401 404 404 404 404 404 403 403 403 404",
    ("attribution-api-detail", "GET"): "401 200 200 200 200 200 200 403 403 403",
    # --- Serving ---
    ("inference:playground", "GET"): PUBLIC,
    ("inference:operator", "GET"): "admin-login admin-login admin-login admin-login admin-login 200",
    ("inference-list", "GET"): "401 200 200 200 200 200 403 403 403 200",
    ("inference-list", "POST"): "401 404 404 404 404 404 403 403 403 404",
    ("openai:models", "GET"): "401 200 200 200 200 200 403 403 403 200",
    ("openai:model", "GET"): "401 200 200 200 200 200 403 403 403 200",
    ("openai:chat-completions", "POST"): "401 404 404 404 404 404 403 403 403 404",
    ("openai:completions", "POST"): "401 404 404 404 404 404 403 403 403 404",
    # --- Retrieval apps (the matrix world has none: its slug and receipt id name nothing; deploying with an
    # empty form shows the form's errors) ---
    ("retrieval_apps:index", "GET"): PUBLIC,
    ("retrieval_apps:create", "GET"): "login 200 200 200 200 200",
    ("retrieval_apps:create", "POST"): "login 200 200 200 200 200",
    ("retrieval_apps:detail", "GET"): "404 404 404 404 404 404",
    ("retrieval_apps:retire", "POST"): "login 404 404 404 404 404",
    ("retrieval_apps:receipt", "GET"): "404 404 404 404 404 404",
    # --- Governance (proposals and votes are public chain data; the matrix world has no proposal) ---
    ("governance:proposals", "GET"): PUBLIC,
    ("governance:proposal", "GET"): "404 404 404 404 404 404",
    ("governance:vote", "POST"): "login 404 404 404 404 404",
    ("governance:propose", "GET"): "login 200 200 200 200 200",
    ("governance:delegate", "GET"): "login 200 200 200 200 200",
    ("governance:stakes", "GET"): "login 200 200 200 200 200",
    ("governance:queue", "GET"): "admin-login admin-login admin-login admin-login admin-login 200",
    ("governance:advance", "POST"): "admin-login admin-login admin-login admin-login admin-login 404",
    ("governance:action", "GET"): "login 404 404 404 404 404",  # another user's wallet action: not found
    ("governance:datanet_stake", "GET"): "login 404 200 200 200 404",  # the private Datanet's members only
    # --- Rewards (a fee is readable by its payer, the contributor; the model's owner; and staff) ---
    ("rewards:index", "GET"): PUBLIC,
    ("rewards:claim", "GET"): "login 200 200 200 200 200",
    ("rewards:claim", "POST"): "login 302 302 302 302 302",  # redirects to the claim page (PRG)
    ("rewards:deposit", "GET"): "login 200 200 200 200 200",
    ("rewards:wallet", "GET"): "login 200 200 200 200 200",
    ("rewards:fees", "GET"): PUBLIC,
    ("rewards:admin", "GET"): "admin-login admin-login admin-login admin-login admin-login 200",
    ("rewards:earnings_csv", "GET"): "login 200 200 200 200 200",  # each person's own earnings
    ("rewards:receipts_csv", "GET"): "login 200 200 200 200 200",
    ("rewards-api-earnings", "GET"): API_SIGNED_IN_READ,
    ("rewards-api-claims", "GET"): API_SIGNED_IN_READ,
    ("rewards-api-fee", "GET"): "401 404 200 404 200 200 200 403 403 403",
    ("rewards-api-fee-policy", "GET"): "200 200 200 200 200 200 200 403 403 403",
    ("rewards-api-wallet-nonce", "POST"): "401 201 201 201 201 201 403 201 403 403",
    ("rewards-api-wallet-link", "POST"): "401 400 400 400 400 400 403 400 403 403",
    # --- Insights: public dashboards; a private Datanet's dashboard is members only ---
    ("insights:index", "GET"): PUBLIC,
    ("insights:datanet", "GET"): MEMBERS,
    ("insights:model", "GET"): PUBLIC,
    ("insights-api-overview", "GET"): "200 200 200 200 200 200 200 403 403 403",
    ("insights-api-datanet", "GET"): API_MEMBERS_READ,
    ("insights-api-model", "GET"): "200 200 200 200 200 200 200 403 403 403",
    ("insights-api-retention", "GET"): "200 200 200 200 200 200 200 403 403 403",
    ("insights-api-epochs", "GET"): "200 200 200 200 200 200 200 403 403 403",
    ("insights-api-top-earners", "GET"): "200 200 200 200 200 200 200 403 403 403",
    # --- Notifications: each person's own settings and webhooks (the owner's webhook, on the private Datanet,
    # is not found by anyone else, staff included); adding one with an empty form shows the form's errors ---
    ("notifications:settings", "GET"): "login 200 200 200 200 200",
    ("notifications:settings", "POST"): "login 302 302 302 302 302",
    ("notifications:webhooks", "GET"): "login 200 200 200 200 200",
    ("notifications:webhooks", "POST"): "login 200 200 200 200 200",
    ("notifications:webhook", "GET"): "login 404 404 404 200 404",
    ("notifications:webhook_test", "POST"): "login 404 404 404 302 404",
    ("notifications:webhook_delete", "POST"): "login 404 404 404 302 404",
    # --- API documentation: public, whatever the key's scopes ---
    ("api-schema", "GET"): "200 200 200 200 200 200 200 200 200 200",
    ("api-docs", "GET"): "200 200 200 200 200 200 200 200 200 200",
    ("api-redoc", "GET"): "200 200 200 200 200 200 200 200 200 200",
}
# Every URL under admin/ is for staff: everyone else is refused (sent to sign in, or 403 when signed in).
# Staff may still be refused where a model admin forbids it (append-only tables have no add or delete).
ADMIN_REFUSED = {"admin-login", "login", "403"}
ADMIN_STAFF_OK = {"200", "302", "403", "404"}
# The admin's own sign-in and sign-out: sign-in is allauth's (rate limits apply); sign-out is POST only.
ADMIN_SPECIAL = {
    "admin:login": "login 403 403 403 403 302",
    "admin:logout": "302 302 302 302 302 405",
}
API_PREFIXES = ("/api/", "/v1/")


def project_urls():
    """(route, name, callback) of every URL pattern, from the live resolver."""

    def walk(patterns, prefix, namespace):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = ":".join(filter(None, (namespace, pattern.namespace))) or None
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
                yield prefix + str(pattern.pattern), name, pattern.callback

    return list(walk(get_resolver().url_patterns, "", None))


def rest_methods(callback) -> set[str]:
    """HTTP methods a DRF view implements (a viewset: those its route maps)."""
    actions = getattr(callback, "actions", None)
    if actions:
        return {method.upper() for method in actions} - {"HEAD", "OPTIONS"}
    cls = getattr(callback, "cls", None)
    if cls is None:
        return set()
    return {m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)}


def test_every_url_has_a_policy():
    urls = project_urls()
    assert len(urls) > 100
    unnamed = [route for route, name, _ in urls if not name and not route.startswith("admin/")]
    assert not unnamed, f"Name these URLs so the policy table can refer to them: {unnamed}"
    declared = {name for name, _ in POLICY}
    names = {name for route, name, _ in urls if not route.startswith("admin/")}
    missing = sorted(names - declared)
    assert not missing, f"Add a POLICY row (who may use it) for: {missing}"
    stale = sorted(declared - names)
    assert not stale, f"POLICY rows for URLs that no longer exist: {stale}"
    undeclared_methods = sorted(
        f"{method} {name}" for route, name, callback in urls if not route.startswith("admin/")
        for method in rest_methods(callback) if (name, method) not in POLICY
    )
    assert not undeclared_methods, f"Add POLICY rows for these API methods: {undeclared_methods}"
    for (name, _), expectation in POLICY.items():
        assert len(expectation.split()) in (len(SESSION_ROLES), len(ROLES)), name


# --- The world ---------------------------------------------------------------------------------------

FAST = {"epochs": 1, "batch_size": 8, "max_seq_length": 32, "eval_fraction": 0.25, "learning_rate": 2e-3}


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    from django.test import TestCase, override_settings
    from hardening_support import sample_rows

    from attribution import services as attribution_services
    from datanets import services as datanet_services
    from datanets.models import Record, RecordStatus
    from inference import services as inference_services
    from lineage.celery import app
    from models_registry import services as model_services
    from rewards.services import credit_grant

    root = tmp_path_factory.mktemp("permission-world")
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    with django_db_blocker.unblock(), override_settings(
        MEDIA_ROOT=root / "media", DATANETS_CACHE_DIR=root / "cache", TRAINING_WORK_DIR=root / "training",
        INFERENCE_RECEIPTS_ASYNC=False,  # the paid inference's receipt and fee exist before the matrix reads them
    ):
        with rollback_block():
            base = build_world(run_on_commit=TestCase.captureOnCommitCallbacks)
            users, private = base.users, base.datanets["private"]["datanet"]
            # Enough rows to fine-tune on: a third version of the private Datanet.
            with TestCase.captureOnCommitCallbacks(execute=True):
                contribution = datanet_services.contribution_create_from_rows(
                    datanet=private, contributor=users["contributor"], rows=sample_rows(24, start=500))
            datanet_services.records_review(
                datanet=private, reviewer=users["owner"], decision="accept",
                record_ids=Record.objects.filter(contribution=contribution).values_list("pk", flat=True))
            version = datanet_services.version_publish(datanet=private, actor=users["owner"])
            # One accepted row not yet in a version, so that publishing has something to freeze.
            pending = base.datanets["private"]["pending"]
            datanet_services.records_review(datanet=private, reviewer=users["owner"], record_ids=pending[:1],
                                            decision="accept")
            base.datanets["private"]["pending"] = pending[1:]
            assert Record.objects.filter(datanet=private, status=RecordStatus.PENDING).exists()
            with TestCase.captureOnCommitCallbacks(execute=True):
                job = model_services.fine_tune_create(
                    owner=users["owner"], name="Private sentiment", base_model=model_services.base_model_ensure_default(),
                    datanet_versions=[version], **FAST)
            job.refresh_from_db()
            assert job.state == "succeeded", job.error
            model = job.model_version
            model_services.model_version_update(version=model, actor=users["owner"], price_per_inference=1000)
            model_services.model_version_set_deployed(version=model, actor=users["owner"], deployed=True)
            receipt = attribution_services.receipt_create(
                model_version=model, input_text="the kettle works", output="positive", requester=users["owner"])
            credit_grant(actor=None, user=users["contributor"], amount=10**6, reason="matrix")
            inference = inference_services.inference_begin(
                user=users["contributor"], api_key=None, endpoint="chat/completions", model=model.slug)
            inference_services.inference_complete(inference=inference, input_text="the lamp is dim", output="negative",
                                                  tokens_in=5, tokens_out=1, slot=None)
            from notifications.services import webhook_create

            webhook = webhook_create(owner=users["owner"], url="https://93.184.216.34/matrix", events=["version.published"],
                                     datanet=private)
            yield {"base": base, "users": users, "private": base.datanets["private"], "public": base.datanets["public"],
                   "job": job, "model": model, "receipt": receipt, "inference_id": inference.inference_id,
                   "media": root / "media", "webhook": webhook}
            attribution_services.cache_clear()
            transaction.set_rollback(True)
    app.conf.task_always_eager = eager


@pytest.fixture(autouse=True)
def _world_storage(request, _django_test_environment, settings):
    """The module's model and index files live in the module's media directory, not the test's own."""
    if "world" in request.fixturenames:
        settings.MEDIA_ROOT = request.getfixturevalue("world")["media"]


def _clients(world):
    """Per role: a page client and an API client (browser session, or the owner's key with one scope)."""
    clients = {}
    for role in ROLES:
        page, api = Client(), APIClient()
        user = world["users"].get(role)
        if user is not None:
            page.force_login(user)
            api.force_login(user)
        secret = world["base"].secrets.get(role)
        if secret:
            page.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
            api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        clients[role] = (page, api)
    return clients


def _kwargs(route, name, world):
    """URL arguments from the names of a route's parameters."""
    state, users = world["private"], world["users"]
    values = {
        "slug": world["model"].slug if name.startswith(("models_registry:", "models-api-", "attribution:valuation",
                                                         "insights:model", "insights-api-model")) else state["datanet"].slug,
        "job_id": world["job"].pk,
        "number": 1,
        "contribution_id": state["contribution"].pk,
        "request_id": state["access_request"].pk,
        "user_id": users["contributor"].pk,
        "username": users["contributor"].username,
        "fmt": "csv",
        "receipt_id": world["receipt"].receipt_id,
        "inference_id": world["inference_id"],
        "model_id": world["model"].slug,
        "key": "not-a-real-key",
        "uidb36": "1",
        "webhook_id": world["webhook"].pk,
    }
    if name.startswith("datanets:") and "<int:pk>" in route and "/rows/" in route:
        values["pk"] = state["pending"][0]
    elif name.startswith("datanets:") and "<int:pk>" in route:
        values["pk"] = state["access_request"].pk if "access" in route else state["contribution"].pk
    elif name == "models_registry:job" or name == "models_registry:job_cancel":
        values["pk"] = world["job"].pk
    elif name.startswith("governance:"):
        values["pk"] = 1
    elif name == "accounts:api_key_revoke":
        from accounts.models import ApiKey

        values["pk"] = ApiKey.objects.filter(user=users["owner"]).order_by("pk").first().pk
    params = re.findall(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>", route)
    return {n: values[n] for pair in params for n in pair if n}


def _body(name, method, world, counter):
    state, users = world["private"], world["users"]
    bodies = datanet_request_bodies(users=users, pending=state["pending"], counter=counter)
    bodies.update(model_request_bodies(datanet_slug=state["datanet"].slug, version_number=3))
    bodies.update({
        ("accounts:api_keys", "POST"): {"name": "matrix", "scopes": ["read"]},
        ("models_registry:version", "POST"): {"price_per_inference": 2000, "allow_download": ""},
        ("models_registry:version_deploy", "POST"): {"deploy": "1"},
        ("attribution-api-create", "POST"): {"model": "no-such-model", "input": "hello", "output": "positive"},
        ("inference-list", "POST"): {"model": "no-such-model", "input": "hello"},
        ("openai:chat-completions", "POST"): {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
        ("openai:completions", "POST"): {"model": "no-such-model", "prompt": "hi"},
        ("rewards-api-wallet-nonce", "POST"): {"address": "0x" + "ab" * 20},
        ("rewards-api-wallet-link", "POST"): {"message": "not a SIWE message", "signature": "0x00"},
    })
    return bodies.get((name, method), {})


def _outcome(response):
    if response.status_code == 302:
        location = response["Location"]
        if location.startswith(reverse("admin:login")):
            return "admin-login"
        if location.startswith(resolve_url(django_settings.LOGIN_URL)):
            return "login"
    if getattr(response, "streaming", False):
        b"".join(response.streaming_content)  # run the whole stream: errors surface here, not later
    return str(response.status_code)


def _request(client, method, path, body, is_api):
    if method == "GET":
        return client.get(path, body)
    if is_api:
        return getattr(client, method.lower())(path, body, format="json")
    return getattr(client, method.lower())(path, body)


def _admin_kwargs(route, world):
    kwargs = {}
    for name in re.findall(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>", route):
        name = next(n for n in name if n)
        kwargs[name] = {"object_id": str(world["users"]["owner"].pk), "app_label": "accounts",
                        "content_type_id": "1", "url": "x"}.get(name, "1")
    return kwargs


@pytest.mark.django_db
@pytest.mark.slow
def test_permission_matrix(world):
    clients = _clients(world)
    routes = {name: route for route, name, _ in project_urls() if name}
    mismatches, counter, checked = [], 0, 0
    for (name, method), expectation in POLICY.items():
        path = reverse(name, kwargs=_kwargs(routes[name], name, world))
        is_api = path.startswith(API_PREFIXES)
        expected = expectation.split()
        if len(expected) == len(SESSION_ROLES):
            expected += [None] * len(KEY_ROLES)  # a page: keys get what anonymous gets
        outcomes = {}
        for role, wanted in zip(ROLES, expected):
            counter += 1
            client = clients[role][1 if is_api else 0]
            with rollback_block():
                outcome = _outcome(_request(client, method, path, _body(name, method, world, counter), is_api))
                transaction.set_rollback(True)
            outcomes[role] = outcome
            checked += 1
            wanted = wanted or outcomes["anonymous"]
            if outcome != wanted:
                mismatches.append(f"{method} {path} ({name}) as {role}: expected {wanted}, got {outcome}")
    assert checked >= len(POLICY) * len(ROLES)
    assert not mismatches, f"{len(mismatches)} of {checked} requests broke the policy:\n" + "\n".join(mismatches)


@pytest.mark.django_db
@pytest.mark.slow
def test_admin_urls_are_for_staff_only(world):
    clients = _clients(world)
    admin_routes = [(route, name) for route, name, _ in project_urls() if route.startswith("admin/") and name]
    assert len(admin_routes) > 20
    mismatches = []
    for route, name in admin_routes:
        try:
            path = reverse(name, kwargs=_admin_kwargs(route[len("admin/"):], world))
        except Exception:  # noqa: BLE001 - a route whose arguments we cannot guess: the index rule covers it
            path = reverse("admin:index")
        special = ADMIN_SPECIAL.get(name, "").split()
        outcomes = {}
        for role in ROLES:
            with rollback_block():
                outcome = outcomes[role] = _outcome(clients[role][0].get(path))
                transaction.set_rollback(True)
            if special:
                wanted = special[ROLES.index(role)] if role in SESSION_ROLES else outcomes["anonymous"]
                allowed = outcome == wanted
            elif role == "staff":
                wanted, allowed = "staff's", outcome in ADMIN_STAFF_OK
            else:
                wanted, allowed = "refused", outcome in ADMIN_REFUSED
            if not allowed:
                mismatches.append(f"GET {path} ({name}) as {role}: expected {wanted}, got {outcome}")
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.django_db
@pytest.mark.slow
def test_private_datanet_is_invisible_to_non_members(world):
    """No page or API answer read by a non-member names the private Datanet or its slug."""
    from accounts.services import api_key_create

    private = world["private"]["datanet"]
    secret = api_key_create(user=world["users"]["stranger"], name="leak", scopes=["read", "contribute", "train",
                                                                                    "infer"]).secret
    readers = {"anonymous": (Client(), APIClient()), "stranger": (Client(), APIClient()),
               "stranger key": (Client(), APIClient())}
    readers["stranger"][0].force_login(world["users"]["stranger"])
    readers["stranger"][1].force_login(world["users"]["stranger"])
    readers["stranger key"][1].credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    routes = {name: route for route, name, _ in project_urls() if name}
    secrets = [private.name, private.slug]
    leaks, read = [], 0
    for (name, method) in POLICY:
        if method != "GET" or name in ("api-schema", "api-docs", "api-redoc"):
            continue
        path = reverse(name, kwargs=_kwargs(routes[name], name, world))
        is_api = path.startswith(API_PREFIXES)
        for reader, (page, api) in readers.items():
            response = (api if is_api else page).get(path)
            body = b"".join(response.streaming_content) if getattr(response, "streaming", False) else response.content
            text = body.decode("utf-8", "replace")
            if response.status_code == 200:
                read += 1
            # The URL itself carries the slug; what matters is whether the answer reveals the Datanet.
            for secret_text in secrets:
                if secret_text in text.replace(path, ""):
                    leaks.append(f"GET {path} ({name}) as {reader}: {response.status_code} names {secret_text!r}")
    assert read > 30
    assert not leaks, "\n".join(leaks)
