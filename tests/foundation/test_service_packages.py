"""`rewards.services` and `attribution.services` are packages of modules named for what they do; callers
keep importing the package (`from rewards import services; services.fee_record(...)`). Every public
write defined in a module is re-exported there, and the names callers used before the split still are."""

import importlib
import inspect
import pkgutil

import pytest

PUBLIC_BEFORE_THE_SPLIT = {
    "rewards.services": {
        "BPS", "EPOCH_CLOSE_LABEL", "EPOCH_STEPS", "PPM", "SIWE_MESSAGES", "STARTER_GRANT_REASON",
        "ClaimRelayAsked", "EpochBlocked", "FeeBatch", "FeeSplit", "InsufficientCredit", "LedgerError",
        "chain_reconcile", "claim_relay", "claim_relay_request", "claim_relay_run", "claims_index", "credit_grant",
        "credit_starter_grant", "deposits_index", "epoch_close", "epoch_resume", "fee_policy_current",
        "fee_policy_set", "fee_record", "fee_settle", "fee_settle_batch", "fee_split", "fees_settle_pending",
        "format_open", "largest_remainder", "siwe_domain", "starter_grant_amount", "wallet_link",
        "wallet_nonce_issue", "wallets_effective_at",
    },
    "attribution.services": {
        "BUILD_LABEL", "PROGRESS_EVERY_S", "STORAGE_ROOT", "BuildError", "IndexCorrupt", "IndexNotReady",
        "ReceiptCheck", "ReceiptMismatch", "cache_clear", "index_build", "index_build_queue", "index_config",
        "index_verify", "model_output", "query_digest", "receipt_create", "receipt_verify",
    },
}


@pytest.mark.parametrize("package_name", sorted(PUBLIC_BEFORE_THE_SPLIT))
def test_the_package_re_exports_every_public_name_of_its_modules(package_name):
    package = importlib.import_module(package_name)
    assert PUBLIC_BEFORE_THE_SPLIT[package_name] <= set(package.__all__)
    assert all(hasattr(package, name) for name in package.__all__)
    for info in pkgutil.iter_modules(package.__path__, f"{package_name}."):
        module = importlib.import_module(info.name)
        assert (module.__doc__ or "").strip(), f"{info.name} says what it is for"
        for name, value in vars(module).items():
            defined_here = (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__ == info.name
            if defined_here and not name.startswith("_"):
                assert getattr(package, name, None) is value, f"{info.name}.{name} is not re-exported"
