"""Top-level writes are durable: a service called from views, the API, tasks or commands opens
`transaction.atomic(durable=True)`, so its change is committed when it returns and no caller can fold it into
a larger transaction by accident. Services that other services call inside their own transaction (the fee
ledger, receipts, job-failure steps, the retrieval build queued from a publish) stay plain `atomic()`."""

import ast
from pathlib import Path

import pytest
from django.db import transaction

from accounts import services as account_services
from accounts.models import ApiKey

ROOT = Path(__file__).resolve().parents[2]

DURABLE = {
    "accounts.services": {"api_key_create", "api_key_revoke", "demo_users_ensure"},
    "attribution.services.builds": {"index_build_queue"},
    "attribution.services.receipts": {"receipt_create_paid"},
    "datanets.services.access": {"access_request_create", "access_request_decide"},
    "datanets.services.datanets": {"datanet_create", "datanet_update"},
    "datanets.services.membership": {"membership_remove", "membership_set"},
    "datanets.services.review": {"records_moderate"},
    "datanets.services.versions": {"version_publish", "version_verify"},
    "governance.services.actions": {"action_create", "wallet_action_retry"},
    "governance.services.staking": {"stake_requirement_set", "stake_slashes_enforce", "stakes_index"},
    "inference.services": {"inference_complete", "inference_complete_settled", "inference_settle_queued"},
    "insights.services.refresh": {"summaries_refresh"},
    "insights.services.synthetic": {"synthetic_history_replace"},
    "models_registry.services.fine_tune_runs": {"fine_tune_run", "model_version_register"},
    "models_registry.services.fine_tunes": {"fine_tune_cancel", "fine_tune_create", "fine_tune_resume"},
    "models_registry.services.model_versions": {"model_version_set_deployed", "model_version_update"},
    "notifications.services.dispatch": {"event_dispatch"},
    "notifications.services.preferences": {"notification_settings_update"},
    "notifications.services.secret_keys": {"webhook_secrets_rotate"},
    "notifications.services.webhooks": {"webhook_create", "webhook_delete", "webhook_send_test"},
    "retrieval.services.apps": {"app_deploy", "app_retire", "app_update"},
    "retrieval.services.builds": {"index_build_requeue", "index_fail_corrupt"},
    "rewards.services.claims": {"claim_relay", "claim_relay_request", "claim_relay_run", "claims_index"},
    "rewards.services.credit": {"deposits_index"},
    "rewards.services.slashes": {"slash_book"},
    "rewards.services.wallets": {"wallet_link"},
}
# Called inside another service's transaction (or a signal sent in one): never durable.
NESTED = {
    "rewards.services.settlement": {"fee_record", "fee_settle", "fee_settle_batch", "fee_attach_receipt"},
    "rewards.services.fees": {"fee_policy_current", "fee_policy_set"},
    "rewards.services.credit": {"credit_grant"},
    "attribution.services.receipts": {"receipt_create"},
    "datanets.services.review": {"records_flag_mislabeled"},
    "retrieval.services.builds": {"index_build_queue"},
}


def _service_modules():
    for path in sorted(ROOT.glob("*/services/*.py")) + sorted(ROOT.glob("*/services.py")):
        yield ".".join(path.relative_to(ROOT).with_suffix("").parts), path


def _atomic_blocks(path: Path) -> dict[str, set[bool]]:
    """{function: {durable?, ...}} for each `transaction.atomic(...)` block, named by its enclosing function."""
    found: dict[str, set[bool]] = {}

    def walk(node, function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                walk(child, child.name)
                continue
            if isinstance(child, ast.With):
                for item in child.items:
                    call = item.context_expr
                    if isinstance(call, ast.Call) and ast.unparse(call.func) == "transaction.atomic":
                        durable = any(k.arg == "durable" and ast.literal_eval(k.value) is True for k in call.keywords)
                        found.setdefault(function, set()).add(durable)
            walk(child, function)

    walk(ast.parse(path.read_text()), "<module>")
    return found


def test_the_durable_services_are_the_top_level_writes():
    durable, nested = {}, {}
    for module, path in _service_modules():
        for function, kinds in _atomic_blocks(path).items():
            if True in kinds:
                durable.setdefault(module, set()).add(function)
            if False in kinds:
                nested.setdefault(module, set()).add(function)
    assert durable == DURABLE
    for module, functions in NESTED.items():
        assert functions <= nested.get(module, set()), module
        assert not functions & durable.get(module, set()), module


def test_a_durable_service_refuses_to_run_inside_an_outer_transaction(alice):
    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        account_services.api_key_create(user=alice, name="folded in", scopes=["read"])
    assert not ApiKey.objects.filter(name="folded in").exists()
    # At the top level (the test's own transaction is TestCase's, which durable blocks accept) it writes.
    account_services.api_key_create(user=alice, name="top level", scopes=["read"])
    assert ApiKey.objects.filter(user=alice, name="top level").exists()
