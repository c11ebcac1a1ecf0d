"""Chain and secrets in a deployment: compose's shared development chain, the `check --deploy` errors for
a public signing key or an in-process chain, secrets read from `<NAME>_FILE`, and a `/metrics` that is
not public."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from django.core.checks import Tags, run_checks
from django.test import override_settings

from lineage.checks import check_chain

ROOT = Path(__file__).resolve().parents[2]
DEV_KEY = "0x" + "0" * 63 + "1"
REAL_KEY = "0x" + "5a" * 32


# --- compose.yaml ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]


def test_compose_runs_the_development_chain_as_a_service_only_the_network_reaches(compose):
    chain = compose["chain"]
    dev_command = next(line.split(":", 1)[1].split() for line in (ROOT / "Procfile.dev").read_text().splitlines()
                       if line.startswith("chain:"))
    assert [Path(dev_command[0]).name, *dev_command[1:]] == chain["command"] == ["python", "manage.py", "chain_node"]
    assert chain["build"] == compose["web"]["build"]  # the same image
    assert "ports" not in chain and chain["expose"] == ["8545"]  # nothing published on the host
    assert chain["environment"]["CHAIN_NODE_HOST"] == "0.0.0.0"
    assert chain["environment"]["CHAIN_RPC_URL"] == ""  # the node runs the chain in its own process
    assert chain["environment"]["REWARDS_CHAIN_AUTO_DEPLOY"] == "1"  # it deploys and records the contracts
    assert chain["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "chain_node" not in json.dumps(chain["healthcheck"]) and "8545" in json.dumps(chain["healthcheck"])


def test_every_service_that_touches_the_chain_uses_the_chain_service(compose):
    chain = compose["chain"]
    app_services = {name: service for name, service in compose.items() if "build" in service and name != "chain"}
    assert {"web", "worker", "beat", "gpu-worker", "migrate", "model-server"} <= set(app_services)
    urls = {name: service["environment"].get("CHAIN_RPC_URL") for name, service in app_services.items()}
    assert len(set(urls.values())) == 1, urls
    url = urlparse(urls["web"])
    assert (url.scheme, url.hostname, str(url.port)) == ("http", "chain", chain["environment"]["CHAIN_NODE_PORT"])
    for name in ("web", "worker", "beat", "gpu-worker"):
        assert compose[name]["depends_on"]["chain"] == {"condition": "service_healthy"}, name
    # They find the distributor the node recorded; none deploys a second set of contracts.
    assert {service["environment"]["REWARDS_CHAIN_AUTO_DEPLOY"] for service in app_services.values()} == {"0"}
    for service in app_services.values():
        assert "CHAIN_PRIVATE_KEY" not in service["environment"]  # the dev chain funds only the dev key


# --- check --deploy ---------------------------------------------------------------------------------------

def _ids(errors):
    return sorted(error.id for error in errors)


@override_settings(DEBUG=False, CHAIN_PRIVATE_KEY=DEV_KEY, CHAIN_RPC_URL="https://rpc.example.org")
def test_deploy_check_fails_on_the_public_development_key():
    errors = check_chain()
    assert _ids(errors) == ["lineage.E001"]
    assert errors[0].is_serious() and "CHAIN_PRIVATE_KEY" in errors[0].hint
    # Registered as a deployment check: only `check --deploy` runs it.
    assert "lineage.E001" in _ids(run_checks(tags=[Tags.security], include_deployment_checks=True))
    assert "lineage.E001" not in _ids(run_checks(tags=[Tags.security]))


@override_settings(DEBUG=False, CHAIN_PRIVATE_KEY=REAL_KEY, CHAIN_RPC_URL="")
def test_deploy_check_fails_on_an_in_process_chain():
    errors = check_chain()
    assert _ids(errors) == ["lineage.E002"]
    assert errors[0].is_serious() and "CHAIN_RPC_URL" in errors[0].hint


@pytest.mark.parametrize("key", [DEV_KEY, "0x2", "0000000000000000000000000000000000000000000000000000000000000003"])
def test_deploy_check_knows_every_development_key(key):
    with override_settings(DEBUG=False, CHAIN_PRIVATE_KEY=key, CHAIN_RPC_URL="http://node:8545"):
        assert _ids(check_chain()) == ["lineage.E001"]


@override_settings(DEBUG=False, CHAIN_PRIVATE_KEY=REAL_KEY, CHAIN_RPC_URL="https://rpc.example.org")
def test_deploy_check_passes_with_an_own_key_and_an_rpc_url():
    assert check_chain() == []
    assert not {"lineage.E001", "lineage.E002"} & set(_ids(run_checks(include_deployment_checks=True)))


@override_settings(DEBUG=True, CHAIN_PRIVATE_KEY=DEV_KEY, CHAIN_RPC_URL="")
def test_deploy_check_is_silent_in_development():
    assert check_chain() == []


def test_manage_py_check_deploy_fails_with_the_development_chain(tmp_path):
    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(64), "ALLOWED_HOSTS": "lineage.example.org",
           "LINEAGE_VAR_DIR": str(tmp_path)}
    for name in ("DATABASE_URL", "CHAIN_RPC_URL", "CHAIN_PRIVATE_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "lineage.E001" in output and "lineage.E002" in output and "HINT: Set CHAIN_PRIVATE_KEY" in output


# --- <NAME>_FILE secrets ------------------------------------------------------------------------------

SECRET_NAMES = ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL", "EMAIL_URL",
                "CHAIN_RPC_URL", "CHAIN_PRIVATE_KEY", "METRICS_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

PROBE = """
import json
from django.conf import settings as s
print(json.dumps({
    "SECRET_KEY": s.SECRET_KEY, "DATABASE_NAME": s.DATABASES["default"]["NAME"],
    "CACHE_LOCATION": s.CACHES["default"]["LOCATION"], "CELERY_BROKER_URL": s.CELERY_BROKER_URL,
    "EMAIL_HOST_PASSWORD": getattr(s, "EMAIL_HOST_PASSWORD", None), "CHAIN_RPC_URL": s.CHAIN_RPC_URL,
    "CHAIN_PRIVATE_KEY": s.CHAIN_PRIVATE_KEY, "METRICS_TOKEN": s.METRICS_TOKEN,
    "S3": s.STORAGES["default"].get("OPTIONS", {}),
}))
"""


def _settings_env(tmp_path, **variables):
    env = {key: value for key, value in os.environ.items()
           if key not in SECRET_NAMES and not key.endswith("_FILE") and key != "AWS_STORAGE_BUCKET_NAME"}
    env.update({"DJANGO_SETTINGS_MODULE": "lineage.settings", "LINEAGE_VAR_DIR": str(tmp_path / "var"), **variables})
    return env


def _load_settings(env):
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_secrets_are_read_from_name_file_variables(tmp_path):
    values = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'from-file.sqlite3'}",
        "CACHE_URL": "redis://:cache-password@cache.internal:6379/1",
        "CELERY_BROKER_URL": "redis://:broker-password@broker.internal:6379/0",
        "EMAIL_URL": "smtp+tls://mailer:mail-password@smtp.example.org:587",
        "CHAIN_RPC_URL": "https://mainnet.example.org/v3/provider-api-key",
        "CHAIN_PRIVATE_KEY": REAL_KEY,
        "METRICS_TOKEN": "scrape-" + secrets.token_hex(8),
        "AWS_ACCESS_KEY_ID": "AKIAFROMFILE",
        "AWS_SECRET_ACCESS_KEY": "s3-secret-from-file",
    }
    variables = {"DEBUG": "0", "AWS_STORAGE_BUCKET_NAME": "lineage-test",
                 "SECRET_KEY": "the-plain-variable-loses"}  # the file wins over the plain variable
    for name, value in values.items():
        path = tmp_path / name.lower()
        path.write_text(value + "\n")  # as `echo value > file` writes it
        variables[f"{name}_FILE"] = str(path)
    result = _load_settings(_settings_env(tmp_path, **variables))
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["SECRET_KEY"] == values["SECRET_KEY"]
    assert loaded["DATABASE_NAME"] == str(tmp_path / "from-file.sqlite3")
    assert loaded["CACHE_LOCATION"] == "redis://:cache-password@cache.internal:6379/1"
    assert loaded["CELERY_BROKER_URL"] == values["CELERY_BROKER_URL"]
    assert loaded["EMAIL_HOST_PASSWORD"] == "mail-password"
    for name in ("CHAIN_RPC_URL", "CHAIN_PRIVATE_KEY", "METRICS_TOKEN"):
        assert loaded[name] == values[name], name
    assert loaded["S3"]["access_key"] == "AKIAFROMFILE" and loaded["S3"]["secret_key"] == "s3-secret-from-file"


def test_plain_variables_still_work_and_an_unreadable_file_names_its_variable(tmp_path):
    result = _load_settings(_settings_env(tmp_path, METRICS_TOKEN="plain-token"))
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["METRICS_TOKEN"] == "plain-token" and "access_key" not in loaded["S3"]

    missing = tmp_path / "no-such-secret"
    result = _load_settings(_settings_env(tmp_path, DEBUG="0", SECRET_KEY_FILE=str(missing)))
    assert result.returncode != 0
    assert f"SECRET_KEY_FILE={missing} cannot be read" in result.stderr, result.stderr[-2000:]


# --- /metrics -----------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_metrics_refuses_anonymous_when_not_debug(client, settings):
    settings.DEBUG, settings.METRICS_TOKEN = False, ""
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 403


@pytest.mark.django_db
def test_metrics_token_accepted_and_wrong_token_refused(client, settings):
    settings.DEBUG, settings.METRICS_TOKEN = False, "scrape-token"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Basic scrape-token"}).status_code == 403
    response = client.get("/metrics", headers={"Authorization": "Bearer scrape-token"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain") and "lineage_model_server_up" in response.content.decode()


@pytest.mark.django_db
def test_metrics_staff_session_accepted_other_sessions_refused(client, settings, alice, make_user):
    settings.DEBUG, settings.METRICS_TOKEN = False, "scrape-token"
    client.force_login(alice)
    assert client.get("/metrics").status_code == 403
    # Outside the cast: staff but not a superuser (the cast's staff is both), so staff alone is what opens it.
    client.force_login(make_user("operator", staff=True))
    assert client.get("/metrics").status_code == 200


@pytest.mark.django_db
def test_metrics_open_only_in_debug_without_a_token(client, settings):
    settings.DEBUG, settings.METRICS_TOKEN = True, ""
    assert client.get("/metrics").status_code == 200
    settings.METRICS_TOKEN = "scrape-token"
    assert client.get("/metrics").status_code == 403
