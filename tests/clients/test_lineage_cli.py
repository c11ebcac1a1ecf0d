"""Issue #18, item 2: the `lineage` command (clients/python, `lineage_client.cli`) against a live server: login,
Datanets, fine-tunes (cancelled midway from a second command, then resumed), models, chat, receipts and
earnings, and what it says, with which exit code, when something is wrong."""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from lineage_client import cli

from models_registry import services as registry_services
from models_registry.models import FineTuneJob, ModelVersion

CLIENT_SOURCE = Path(__file__).resolve().parents[2] / "clients" / "python"
pytestmark = pytest.mark.django_db(transaction=True)

FAST = ["--set", "epochs=2", "--set", "batch_size=2", "--set", "max_seq_length=32", "--set", "eval_fraction=0.25",
        "--set", "learning_rate=2e-3"]


@pytest.fixture
def lineage(capsys):
    """Run `lineage ARGS…` in this process: (exit code, stdout, stderr)."""

    def run(*argv):
        capsys.readouterr()
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def logged_in(alice, api_key_for, live_server, lineage, tmp_path):
    _, secret = api_key_for(alice, "read", "contribute", "train", "infer")
    code, out, err = lineage("login", "--url", live_server.url, "--key", secret)
    assert code == 0, err
    return secret


def test_login_checks_the_key_and_saves_it_privately(alice, api_key_for, live_server, lineage, tmp_path):
    config = tmp_path / "lineage-config.toml"  # LINEAGE_CONFIG (conftest)
    code, out, err = lineage("login", "--url", live_server.url, "--key", "lin_wrong_key")
    assert code == 1 and out == ""
    assert "error: The server refused the API key: This API key is not valid or has been revoked." in err
    assert f"create one at {live_server.url}/account/keys/" in err
    assert not config.exists()  # nothing saved for a refused key

    _, secret = api_key_for(alice, "read", "contribute")
    code, out, err = lineage("login", "--url", live_server.url + "/", "--key", secret)
    assert code == 0, err
    assert out.strip() == f"Logged in to {live_server.url} as Alice (scopes: contribute, read). Saved to {config}."
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and secret in config.read_text()
    code, out, err = lineage("datanets", "list")  # the saved login is used from now on
    assert code == 0 and out.strip() == "No Datanets match."

    code, out, err = lineage("--api-key", "lin_revoked_key", "datanets", "list")
    assert code == 1 and "This API key is not valid or has been revoked." in err and "(from --api-key)" in err
    code, out, err = lineage("--url", "http://127.0.0.1:9", "datanets", "list")
    assert code == 1 and "is for " + live_server.url in err and "lineage login --url http://127.0.0.1:9" in err


@pytest.mark.slow
def test_the_verbs_end_to_end(alice, charlie, staff, logged_in, lineage, live_server, intents_csv, accept_all, sync,
                              api_key_for, base_model, monkeypatch, tmp_path):
    from models_registry.training import runner
    from rewards import services as rewards_services

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    code, out, err = lineage("datanets", "create", "Support intents", "--task", "text-classification",
                             "--labels", "billing,shipping", "--json")
    assert code == 0, err
    slug = json.loads(out)["slug"]

    code, out, err = lineage("datanets", "upload", slug, intents_csv)
    assert code == 0, err
    contribution = _contribution_id(out)
    assert out.splitlines()[0] == (f"Contribution {contribution} to {slug}: in_review (100%). Rows: 25 read, 24 into "
                                   "review, 1 refused, 0 duplicates.")
    assert f"`lineage datanets errors {slug} {contribution}` lists them" in out
    assert "upload intents.csv: 100%" in err and f"validate #{contribution}: 100%" in err

    code, out, err = lineage("datanets", "errors", slug, contribution, "--csv", downloads / "refused.csv")
    assert code == 0 and out.splitlines()[0].startswith("row 25 (line 26): unknown_label: Line 26")
    assert "please send me a sticker" in (downloads / "refused.csv").read_text()

    code, out, err = lineage("datanets", "upload", "no-such-datanet", intents_csv)
    assert code == 1 and "error: No Datanet “no-such-datanet” that this API key can see." in err
    assert "hint: Check the slug: `lineage datanets list`" in err

    accept_all(slug)
    code, out, err = lineage("datanets", "publish", slug, "--notes", "first cut")
    assert code == 0 and out.startswith(f"Published {slug} v1: 24 rows from 1 contributor, hash ")
    code, out, err = lineage("datanets", "download", slug, 1, "-o", downloads, "--format", "parquet", "-q")
    assert code == 0 and err == "" and "checked: SHA-256 and size match the manifest" in out
    assert (downloads / f"{slug}-v1.parquet").exists()

    # Launch; while it trains, the owner cancels it from a second terminal (the engine stops at its next step).
    monkeypatch.setattr(registry_services.fine_tune_runs, "CANCEL_POLL_S", 0.0)
    real, polls, cancels = runner.run_training, [0], []

    def cancel_from_another_terminal(spec, rows, work_dir, on_progress=None, should_cancel=None, **kwargs):
        def should_stop():
            polls[0] += 1
            if polls[0] == 4 and not cancels:
                cancels.append(cli.main(["fine-tunes", "cancel", str(FineTuneJob.objects.get().pk)]))
            return should_cancel()

        return real(spec, rows, work_dir, on_progress, should_stop, **kwargs)

    monkeypatch.setattr(registry_services.training, "run_training", cancel_from_another_terminal, raising=False)
    code, out, err = lineage("fine-tunes", "launch", "--datanet", f"{slug}:1", "--name", "Support intents", *FAST)
    assert code == 0 and cancels == [0], err
    job = FineTuneJob.objects.get()
    assert "It stops at its next step and keeps its checkpoint." in out
    assert f"`lineage fine-tunes wait {job.pk}` follows it." in out

    code, out, err = lineage("fine-tunes", "wait", job.pk)
    assert code == 4 and f"error: Fine-tune {job.pk} was cancelled at step 3/" in err
    assert f"hint: `lineage fine-tunes resume {job.pk}` continues it from its checkpoint." in err
    code, out, err = lineage("fine-tunes", "resume", job.pk, "--wait")
    assert code == 0, err
    job.refresh_from_db()
    model = job.model_version.slug
    assert out.startswith(f"Fine-tune {job.pk} “Support intents”: succeeded, step {job.total_steps}/{job.total_steps},"
                          f" epoch 2/2, loss ") and out.strip().endswith(f"model {model}.")
    assert job.resumed_from_step == 3 and "epoch 2/2" in err
    code, out, err = lineage("fine-tunes", "cancel", job.pk)
    assert code == 1 and "This fine-tune is succeeded; only a queued or running one can be cancelled." in err
    assert f"hint: It has already finished: `lineage fine-tunes get {job.pk}` shows how." in err

    code, out, err = lineage("models", "get", model)
    assert code == 0 and f"trained on {slug} v1: 24 rows from 1 contributor, " in out
    code, out, err = lineage("models", "price", model, "abc")
    assert code == 2 and "error: “abc” is not an amount of OPEN: give a decimal number such as 0.05 or 1." in err
    assert "hint: Give the price in OPEN, e.g. 0.05" in err and ModelVersion.objects.get().price_per_inference == 0
    code, out, err = lineage("models", "price", model, "0.001")
    assert code == 0 and out.strip() == f"{model} now costs 0.001 OPEN per answer (1000000000000000 base units)."
    code, out, err = lineage("models", "deploy", model)
    assert code == 0 and out.strip() == f"Deployed {model}: it answers on {live_server.url}/v1 as model “{model}”."
    assert sync().loaded == [model]
    code, out, err = lineage("models", "download", model, "-o", downloads, "-q")
    assert code == 0 and "checked: SHA-256 matches X-Content-SHA256" in out

    _, asker = api_key_for(charlie, "read", "infer")
    code, out, err = lineage("--api-key", asker, "chat", model, "where is my parcel please")
    assert code == 1 and f"hint: Add credit at {live_server.url}/rewards/deposit/." in err  # no credit yet
    rewards_services.credit_grant(actor=staff, user=charlie, amount=10**16, reason="tests")
    code, out, err = lineage("--api-key", asker, "--json", "chat", model, "where is my parcel please")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["choices"][0]["message"]["content"] == "shipping"
    receipt = answer["lineage"]["receipt_id"]
    code, out, err = lineage("--api-key", asker, "receipts", "get", receipt)
    assert code == 0 and out.startswith(f"Receipt {receipt} for model {model}")
    code, out, err = lineage("receipts", "get", "no-such-receipt")
    assert code == 1 and "No receipt “no-such-receipt” that this API key can see." in err

    rewards_services.fees_settle_pending()
    code, out, err = lineage("earnings")
    assert code == 0 and out.startswith("Earned 0.000") and " owner " in out
    assert answer["lineage"]["inference_id"] in out
    code, out, err = lineage("models", "undeploy", model)
    assert code == 0 and out.strip() == f"Undeployed {model}: it no longer answers."


def _contribution_id(out: str) -> int:
    return int(out.split()[1])


def test_bad_command_lines_say_what_to_do(logged_in, lineage, tmp_path):
    code, out, err = lineage("datanets", "upload", "some-datanet", tmp_path / "absent.csv")
    assert code == 2 and f"error: No file at {tmp_path / 'absent.csv'}: give the path of the file to upload." in err
    code, out, err = lineage("fine-tunes", "launch")
    assert code == 2 and "Name the Datanet versions to train on: --datanet slug:number" in err
    code, out, err = lineage("fine-tunes", "launch", "--datanet", "intents")
    assert code == 2 and "“intents” does not name a Datanet version: write it as slug:number" in err
    code, out, err = lineage("fine-tunes", "launch", "--datanet", "intents:1", "--set", "epoch=3")
    assert code == 2 and "Unknown setting(s): epoch." in err
    code, out, err = lineage("models", "price", "some-model", "0.0000000000000000001")
    assert code == 2 and "more than 18 decimal places" in err
    code, out, err = lineage("models", "price", "some-model", "1.5", "--base-units")
    assert code == 2 and "is not a whole number of base units" in err
    code, out, err = lineage("fine-tunes", "wait", "12345")
    assert code == 1 and "No fine-tune 12345 that this API key can see." in err
    with pytest.raises(SystemExit) as usage:
        cli.main(["datanets", "frobnicate"])
    assert usage.value.code == 2


def test_ctrl_c_while_waiting_stops_the_command_not_the_job(alice, logged_in, lineage, base_model, monkeypatch):
    job = FineTuneJob.objects.create(owner=alice, name="queued", base_model=base_model, task="text-classification",
                                     label_names=["billing", "shipping"], hyperparameters={"epochs": 2})
    real_client = cli._client

    def client_interrupted_while_sleeping(args):
        client = real_client(args)
        client.sleep = ctrl_c
        return client

    def ctrl_c(delay):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_client", client_interrupted_while_sleeping)
    code, out, err = lineage("fine-tunes", "wait", job.pk, "-q")
    assert code == 130 and out == ""
    assert err.strip() == f"Stopped waiting (fine-tune {job.pk} is queued); nothing was changed on the server."
    job.refresh_from_db()
    assert job.state == "queued" and not job.cancel_requested  # the job goes on
    code, out, err = lineage("fine-tunes", "get", job.pk)
    assert code == 0 and out.startswith(f"Fine-tune {job.pk} “queued”: queued.")


def test_the_package_installs_on_its_own_with_its_command(tmp_path):
    """`pip install ./clients/python`, into a folder of its own (no network: the build backend is the venv's
    setuptools, and the dependencies, httpx and tqdm, are already installed): the `lineage` script works, the
    package declares only httpx and tqdm, and importing it pulls in no Django."""
    source, target = tmp_path / "source", tmp_path / "site"  # a copy: the build writes build/ and egg-info there
    shutil.copytree(CLIENT_SOURCE, source, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(source)], check=True, capture_output=True,
                   timeout=300, cwd=tmp_path)
    (metadata,) = target.glob("lineage_client-0.1.0.dist-info/METADATA")
    requires = sorted(re.match(r"Requires-Dist: *([A-Za-z0-9_.-]+)", line).group(1)
                      for line in metadata.read_text().splitlines() if line.startswith("Requires-Dist:"))
    assert requires == ["httpx", "tqdm"]
    env = {**os.environ, "PYTHONPATH": str(target)}
    script = subprocess.run([str(target / "bin" / "lineage"), "--version"], env=env, capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert script.returncode == 0 and script.stdout.strip() == "lineage-client 0.1.0", script.stderr
    imported = subprocess.run([sys.executable, "-c", "import sys, lineage_client; print(lineage_client.__file__, "
                               "'django' in sys.modules)"], env=env, capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)
    assert imported.stdout.split() == [str(target / "lineage_client" / "__init__.py"), "False"], imported.stderr


def test_the_command_runs_as_its_own_process(live_server):
    env = {**os.environ, "PYTHONPATH": str(CLIENT_SOURCE), "LINEAGE_URL": live_server.url,
           "LINEAGE_API_KEY": "lin_not_a_key"}
    result = subprocess.run([sys.executable, "-m", "lineage_client", "datanets", "list"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert "The server refused the API key" in result.stderr and "(from LINEAGE_API_KEY)" in result.stderr
    version = subprocess.run([sys.executable, "-m", "lineage_client", "--version"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.strip() == "lineage-client 0.1.0"
