"""Health, settings, the OpenAPI schema, page shell and the deploy checklist."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_healthz_reports_database_broker_and_storage(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "storage"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db
def test_healthz_reports_a_broken_broker_as_503(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded" and not body["checks"]["broker"]["ok"]
    assert body["checks"]["database"]["ok"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["home", "datanets:index", "models_registry:index", "attribution:index", "inference:playground",
             "rewards:index", "insights:index", "account_login", "account_signup", "api-docs", "api-redoc"]
)
def test_every_navigation_page_renders(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert "Content-Security-Policy" in response.headers


@pytest.mark.django_db
def test_htmx_request_renders_only_the_partial(client, alice):
    client.force_login(alice)
    response = client.get(reverse("accounts:api_keys"), headers={"HX-Request": "true"})
    text = response.content.decode()
    assert 'id="keys-panel"' in text and "<html" not in text


@pytest.mark.django_db
def test_openapi_schema_lists_bearer_auth(client):
    response = client.get("/api/schema/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].startswith("application/json") else None
    if schema is None:
        import yaml

        schema = yaml.safe_load(response.content)
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert "/api/v1/me/" in schema["paths"]


@pytest.mark.django_db
def test_swagger_ui_is_served_offline(client):
    html = client.get("/api/docs/").content.decode()
    assert "cdn" not in html.lower()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html


@pytest.mark.django_db
def test_unknown_api_path_is_json_404(client, settings):
    settings.DEBUG = False
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_check_deploy_is_clean_with_production_variables(tmp_path):
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "lineage.example.org",
        "LINEAGE_VAR_DIR": str(tmp_path),
        "CHAIN_RPC_URL": "https://rpc.example.org",
        "CHAIN_PRIVATE_KEY": "0x" + secrets.token_hex(32),
    }
    env.pop("DATABASE_URL", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by conftest for Playwright; never in deployment
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = {**os.environ, "DEBUG": "0", "LINEAGE_VAR_DIR": str(tmp_path)}
    env.pop("SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_admin_login_goes_through_allauth(client):
    response = client.get("/admin/login/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
