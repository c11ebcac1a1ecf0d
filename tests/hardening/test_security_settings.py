"""Security settings as a deployment gets them, and the controls that must actually trip.

`check --deploy` with production variables and "no SECRET_KEY, no start" are in
`tests/foundation/test_platform.py`; these add what that check does not see: the values production
really runs with, the headers and cookies on real responses, session rotation at sign-in, API keys that
exist nowhere in the database in clear, the login and API-key rate limits tripping, and an audit event
for every privileged action (with a declared list that a new privileged service cannot slip past).
"""

import hashlib
import inspect
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cast_support import PASSWORD
from django.apps import apps
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


# --- Production values ---------------------------------------------------------------------------------

def test_production_settings_are_strict(tmp_path):
    """With DEBUG=0 (and only the variables a deployment sets) every security setting is on."""
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({k: getattr(s, k, None) "
        "for k in ('DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY', "
        "'SESSION_COOKIE_SAMESITE', 'CSRF_COOKIE_SAMESITE', 'SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', "
        "'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_CONTENT_TYPE_NOSNIFF', 'X_FRAME_OPTIONS', "
        "'SECURE_REFERRER_POLICY', 'SECURE_CROSS_ORIGIN_OPENER_POLICY', 'ACCOUNT_DEFAULT_HTTP_PROTOCOL', "
        "'SECURE_PROXY_SSL_HEADER')}, default=list))"
    )
    env = {**{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE")},
           "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(64), "ALLOWED_HOSTS": "lineage.example.org",
           "LINEAGE_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "lineage.settings"}
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is True
    assert values["SESSION_COOKIE_SAMESITE"] == values["CSRF_COOKIE_SAMESITE"] == "Lax"
    assert values["SECURE_SSL_REDIRECT"] is True and values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SECURE_HSTS_SECONDS"] >= 31_536_000 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True and values["X_FRAME_OPTIONS"] == "DENY"
    assert values["SECURE_REFERRER_POLICY"] == "same-origin" and values["SECURE_CROSS_ORIGIN_OPENER_POLICY"] == "same-origin"
    assert values["ACCOUNT_DEFAULT_HTTP_PROTOCOL"] == "https"


# --- Headers and cookies on real responses ---------------------------------------------------------------

def _csp(response) -> dict:
    return {part.split()[0]: part.split()[1:] for part in response["Content-Security-Policy"].split(";") if part.strip()}


@pytest.mark.parametrize("path", ["/", "/datanets/", "/accounts/login/", "/api/v1/datanets/", "/api/schema/",
                                  "/api/docs/", "/no/such/page/", "/api/v1/no-such-endpoint/", "/healthz"])
def test_security_headers_on_pages_api_and_errors(client, path):
    response = client.get(path)
    assert response.status_code in (200, 404)
    csp = _csp(response)
    assert csp["default-src"] == ["'self'"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'self'"] and csp["form-action"] == ["'self'"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert not any("*" in source or source.startswith("http") for sources in csp.values() for source in sources)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    # drf-spectacular's Swagger UI answers `unsafe-none` on purpose (OAuth2 pop-up sign-in); Lineage uses
    # bearer keys, not OAuth2, so nothing there needs it, but it is the library's choice, kept visible here.
    assert response["Cross-Origin-Opener-Policy"] == ("unsafe-none" if path == "/api/docs/" else "same-origin")
    assert "camera=()" in response["Permissions-Policy"]


def test_session_and_csrf_cookies_and_session_rotation(alice):
    client = Client(enforce_csrf_checks=True)
    page = client.get(reverse("account_login"))
    csrf = page.cookies["csrftoken"]
    assert csrf["samesite"] == "Lax" and not csrf["httponly"]  # the page's htmx reads it; its value is not a secret
    before = client.session.session_key
    # Without the token the sign-in is refused (CSRF applies to the login form too).
    refused = client.post(reverse("account_login"), {"login": alice.email, "password": PASSWORD})
    assert refused.status_code == 403
    response = client.post(reverse("account_login"), {"login": alice.email, "password": PASSWORD,
                                                      "csrfmiddlewaretoken": csrf.value})
    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["httponly"] and session["samesite"] == "Lax"
    assert session.value != before  # a new session at sign-in: a planted session id is worthless
    assert response.cookies["csrftoken"].value != csrf.value  # and a new CSRF secret


# --- API keys: only a hash exists -------------------------------------------------------------------

def test_api_key_secret_exists_nowhere_in_the_database(alice, client):
    """Create a key through the page, use it, revoke it: no table holds the secret or its random part."""
    client.force_login(alice)
    page = client.post(reverse("accounts:api_keys"), {"name": "ci", "scopes": ["read", "contribute"]}, follow=True)
    secret = re.search(rb"lin_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}", page.content).group().decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/me/").status_code == 200
    from accounts.models import ApiKey

    key = ApiKey.objects.get(user=alice)
    client.post(reverse("accounts:api_key_revoke", args=[key.pk]))
    assert api.get("/api/v1/me/").status_code == 401
    # The format is lin_<prefix>_<random>; the random part is urlsafe base64 and may itself hold "_",
    # so split from the left (rsplit once left a one-letter tail that matched any hash by chance).
    random_part = secret.split("_", 2)[2]
    assert len(random_part) >= 40
    found = []
    with connection.cursor() as cursor:
        for model in apps.get_models():
            table = model._meta.db_table
            columns = [f.column for f in model._meta.concrete_fields]
            cursor.execute(f"SELECT {', '.join(connection.ops.quote_name(c) for c in columns)} FROM "
                           f"{connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for column, value in zip(columns, row):
                    if value is not None and random_part in str(value):
                        found.append(f"{table}.{column}")
    assert not found, f"the key's secret is stored in clear in {found}"
    assert len(key.secret_hash) == 64 and key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    # Shown once: the keys page no longer shows it.
    assert secret.encode() not in client.get(reverse("accounts:api_keys")).content


# --- Rate limits ----------------------------------------------------------------------------------------

def test_login_rate_limit_trips_and_then_refuses_even_the_right_password(alice, bob):
    client = Client()
    for _ in range(5):
        response = client.post(reverse("account_login"), {"login": alice.email, "password": "wrong password"})
        assert response.status_code == 200 and "_auth_user_id" not in client.session
    blocked = client.post(reverse("account_login"), {"login": alice.email, "password": PASSWORD})
    assert blocked.status_code in (200, 429)
    assert "_auth_user_id" not in client.session
    assert b"Too many" in blocked.content or blocked.status_code == 429
    # Another account from elsewhere is not locked out by alice's attacker.
    other = Client(REMOTE_ADDR="10.9.8.7")
    assert other.post(reverse("account_login"), {"login": bob.email, "password": PASSWORD}).status_code == 302


def test_api_key_throttle_trips_per_key_and_anonymous_throttle_per_address(alice, api_key_for):
    from rest_framework.settings import api_settings

    rate = int(api_settings.DEFAULT_THROTTLE_RATES["api_key"].split("/")[0])
    _, secret = api_key_for(alice, "read")
    _, other_secret = api_key_for(alice, "read", name="other")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    statuses = [api.get("/api/v1/me/").status_code for _ in range(rate)]
    assert set(statuses) == {200}
    throttled = api.get("/api/v1/me/")
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    body = throttled.json()
    assert body["code"] == "throttled" and set(body) == {"code", "detail", "fields"}
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_secret}")
    assert other.get("/api/v1/me/").status_code == 200  # a runaway key does not starve its owner's others

    anon_rate = int(api_settings.DEFAULT_THROTTLE_RATES["anon"].split("/")[0])
    anonymous = APIClient()
    statuses = [anonymous.get("/api/v1/rewards/fee-policy/").status_code for _ in range(anon_rate)]
    assert set(statuses) == {200}
    assert anonymous.get("/api/v1/rewards/fee-policy/").status_code == 429
    assert APIClient(REMOTE_ADDR="10.1.2.3").get("/api/v1/rewards/fee-policy/").status_code == 200


# --- Audit events for every privileged action -----------------------------------------------------------

# Privileged actions: what changes credentials, who may do what, money or published data. Each is
# performed through its service below and must write its AuditEvent (in the same transaction).
PRIVILEGED = {
    "accounts.services.api_key_create": "api_key.create",
    "accounts.services.api_key_revoke": "api_key.revoke",
    "datanets.services.datanet_create": "datanet.create",
    "datanets.services.datanet_update": "datanet.update",
    "datanets.services.membership_set": "datanet.member_set",
    "datanets.services.membership_remove": "datanet.member_remove",
    "datanets.services.contribution_create_from_rows": "contribution.create",
    "datanets.services.contribution_create_from_file": "contribution.create",
    "datanets.services.records_review": "record.accept",
    "datanets.services.version_publish": "datanet.version_publish",
    "datanets.services.version_verify": "datanet.version_verify",
    "datanets.services.access_request_create": "datanet.access_request",
    "datanets.services.access_request_decide": "datanet.access_approved",
    "models_registry.services.fine_tune_create": "fine_tune.create",
    "models_registry.services.fine_tune_cancel": "fine_tune.cancel",
    "models_registry.services.model_version_update": "model_version.update",
    "models_registry.services.model_version_set_deployed": "model_version.deploy",
    "rewards.services.fee_policy_set": "rewards.fee_policy_set",
    "rewards.services.credit_grant": "rewards.credit_grant",
    "rewards.services.wallet_link": "rewards.wallet_link",
}
# Writes that are not a person's privileged action, or whose audit is asserted where the chain runs.
NOT_HERE = {
    "rewards.services.epoch_close": "needs the chain: audited `rewards.epoch_close`, see tests/rewards/test_epochs.py",
    "rewards.services.claim_relay": "needs the chain: audited `rewards.claim_relay` (tests/rewards)",
    "rewards.services.wallet_nonce_issue": "a one-time challenge; the link it enables is audited",
    "datanets.services.records_flag_mislabeled": "system action after valuation, audited as record.flag_mislabeled",
    "rewards.services.credit_starter_grant": "system action on signup, audited `rewards.starter_grant` "
                                             "(tests/rewards/test_journey_deposit.py)",
}
SERVICE_MODULES = ("accounts.services", "datanets.services", "models_registry.services", "rewards.services")
WRITE_VERBS = re.compile(r"_(create|update|set|remove|revoke|decide|publish|verify|review|cancel|grant|link|"
                         r"close|relay|deployed|issue|flag_mislabeled)$")


def test_every_privileged_service_is_declared():
    import importlib
    import pkgutil

    found = set()
    for module_name in SERVICE_MODULES:
        package = importlib.import_module(module_name)
        # A services package (rewards.services) defines its writes in submodules: walk every one of them.
        modules = [package] + [importlib.import_module(info.name) for info in
                               pkgutil.iter_modules(getattr(package, "__path__", []), f"{module_name}.")]
        for module in modules:
            for name, function in inspect.getmembers(module, inspect.isfunction):
                if function.__module__ == module.__name__ and not name.startswith("_") and WRITE_VERBS.search(name):
                    assert getattr(package, name, None) is function, f"{module.__name__}.{name} is not in {module_name}"
                    found.add(f"{module_name}.{name}")
    undeclared = sorted(found - set(PRIVILEGED) - set(NOT_HERE))
    assert not undeclared, f"Declare these writes in PRIVILEGED (and test their audit) or NOT_HERE: {undeclared}"


def test_every_privileged_action_writes_an_audit_event(alice, bob, charlie, staff, intent_rows, publish, settings,
                                                       django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from eth_account import Account
    from eth_account.messages import encode_defunct

    from accounts import services as accounts
    from accounts.models import AuditEvent
    from datanets import services as datanets
    from datanets.models import Record
    from models_registry import services as models
    from rewards import services as rewards

    performed = {}

    def expect(service, action, actor, call):
        before = set(AuditEvent.objects.values_list("pk", flat=True))
        result = call()
        new = AuditEvent.objects.exclude(pk__in=before).filter(action=action)
        assert new.exists(), f"{service} wrote no `{action}` audit event"
        if actor is not None:
            assert new.filter(actor=actor).exists(), f"{service}: `{action}` does not name its actor"
        performed[service] = action
        return result

    issued = expect("accounts.services.api_key_create", "api_key.create", alice,
                    lambda: accounts.api_key_create(user=alice, name="k", scopes=["read"]))
    expect("accounts.services.api_key_revoke", "api_key.revoke", alice,
           lambda: accounts.api_key_revoke(api_key=issued.api_key, actor=alice))
    datanet = expect("datanets.services.datanet_create", "datanet.create", alice,
                     lambda: datanets.datanet_create(owner=alice, name="Audited", task_type="text-classification",
                                                     label_set=["billing", "shipping"], training_access="approval"))
    expect("datanets.services.datanet_update", "datanet.update", alice,
           lambda: datanets.datanet_update(datanet=datanet, actor=alice, summary="changed"))
    expect("datanets.services.membership_set", "datanet.member_set", alice,
           lambda: datanets.membership_set(datanet=datanet, actor=alice, user=bob, role="curator"))
    expect("datanets.services.membership_remove", "datanet.member_remove", alice,
           lambda: datanets.membership_remove(datanet=datanet, actor=alice, user=bob))
    expect("datanets.services.contribution_create_from_rows", "contribution.create", charlie,
           lambda: datanets.contribution_create_from_rows(datanet=datanet, contributor=charlie,
                                                          rows=[{"text": "charged twice", "label": "billing"}]))
    with django_capture_on_commit_callbacks(execute=True):
        expect("datanets.services.contribution_create_from_file", "contribution.create", charlie,
               lambda: datanets.contribution_create_from_file(
                   datanet=datanet, contributor=charlie,
                   uploaded_file=SimpleUploadedFile("r.csv", b"text,label\nwhere is my parcel,shipping\n")))
    expect("datanets.services.records_review", "record.accept", alice,
           lambda: datanets.records_review(datanet=datanet, reviewer=alice, decision="accept",
                                           record_ids=Record.objects.filter(datanet=datanet).values_list("pk", flat=True)))
    version = expect("datanets.services.version_publish", "datanet.version_publish", alice,
                     lambda: datanets.version_publish(datanet=datanet, actor=alice))
    expect("datanets.services.version_verify", "datanet.version_verify", alice,
           lambda: datanets.version_verify(version=version, actor=alice))
    access = expect("datanets.services.access_request_create", "datanet.access_request", charlie,
                    lambda: datanets.access_request_create(datanet=datanet, requester=charlie, message="model"))
    expect("datanets.services.access_request_decide", "datanet.access_approved", alice,
           lambda: datanets.access_request_decide(access_request=access, actor=alice, approve=True))

    settings.ATTRIBUTION_BUILD_ON_REGISTER = False  # the model's index is not what this test is about
    trained = publish(alice, intent_rows(repeat=1), name="Trainable")
    job = expect("models_registry.services.fine_tune_create", "fine_tune.create", alice,
                 lambda: models.fine_tune_create(owner=alice, name="audited", base_model=models.base_model_ensure_default(),
                                                 datanet_versions=[trained]))
    expect("models_registry.services.fine_tune_cancel", "fine_tune.cancel", alice,
           lambda: models.fine_tune_cancel(job=job, actor=alice))

    expect("rewards.services.fee_policy_set", "rewards.fee_policy_set", staff,
           lambda: rewards.fee_policy_set(actor=staff, protocol_bps=1000, owner_bps=3000, contributors_bps=6000))
    expect("rewards.services.credit_grant", "rewards.credit_grant", staff,
           lambda: rewards.credit_grant(actor=staff, user=charlie, amount=10**18, reason="audit test"))
    account = Account.create()
    nonce = rewards.wallet_nonce_issue(user=charlie, address=account.address)
    signature = "0x" + bytes(Account.sign_message(encode_defunct(text=nonce.message), private_key=account.key)
                             .signature).hex()
    expect("rewards.services.wallet_link", "rewards.wallet_link", charlie,
           lambda: rewards.wallet_link(user=charlie, message=nonce.message, signature=signature))
    model_version_audits(expect, alice, django_capture_on_commit_callbacks, trained)
    assert set(performed) == set(PRIVILEGED), sorted(set(PRIVILEGED) - set(performed))


def model_version_audits(expect, alice, django_capture_on_commit_callbacks, trained):
    """A model version's owner changes its price and deploys it: a short real fine-tune first."""
    from models_registry import services as models

    with django_capture_on_commit_callbacks(execute=True):
        job = models.fine_tune_create(owner=alice, name="priced", base_model=models.base_model_ensure_default(),
                                      datanet_versions=[trained], epochs=1, batch_size=8, max_seq_length=16)
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    version = job.model_version
    expect("models_registry.services.model_version_update", "model_version.update", alice,
           lambda: models.model_version_update(version=version, actor=alice, price_per_inference=0,
                                               allow_download=True))
    expect("models_registry.services.model_version_set_deployed", "model_version.deploy", alice,
           lambda: models.model_version_set_deployed(version=version, actor=alice, deployed=True))
