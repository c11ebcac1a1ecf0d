"""Audit actions are typed: `accounts.models.AuditAction` lists every action an `AuditEvent` records, every
writer names a member, and `audit_record` refuses anything else before writing. That each privileged service
really writes its event is tested in tests/hardening/test_security_settings.py."""

import ast
from pathlib import Path

import pytest

from accounts.models import AuditAction, AuditEvent
from accounts.services import audit_record

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", "tests", "node_modules", "var", "static", "migrations", ".git"}


def _app_sources():
    for path in sorted(ROOT.rglob("*.py")):
        if not SKIP & set(path.relative_to(ROOT).parts):
            yield path, ast.parse(path.read_text(), filename=str(path))


def _called(node: ast.Call) -> str | None:
    return getattr(node.func, "id", None) or getattr(node.func, "attr", None)


def _string_literals(expr) -> list[ast.AST]:
    """String literals and f-strings an action expression could write as is. A helper's call (a function
    that returns a member, tested below) and the condition of `a if condition else b` are not scanned."""
    if isinstance(expr, ast.Call):
        return []
    if isinstance(expr, ast.JoinedStr) or (isinstance(expr, ast.Constant) and isinstance(expr.value, str)):
        return [expr]
    if isinstance(expr, ast.IfExp):
        return _string_literals(expr.body) + _string_literals(expr.orelse)
    return [found for child in ast.iter_child_nodes(expr) for found in _string_literals(child)]


def test_every_audit_write_names_an_audit_action_member():
    calls, problems = 0, []
    for path, tree in _app_sources():
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "AuditAction":
                if not hasattr(AuditAction, node.attr):
                    problems.append(f"{where}:{node.lineno}: AuditAction.{node.attr} is not a member")
            if not isinstance(node, ast.Call):
                continue
            if _called(node) == "audit_record":
                calls += 1
                action = next((kw.value for kw in node.keywords if kw.arg == "action"), None)
                if action is None:
                    problems.append(f"{where}:{node.lineno}: audit_record without action=")
                    continue
                for literal in _string_literals(action):
                    problems.append(f"{where}:{node.lineno}: a string literal as the audit action "
                                    f"({ast.unparse(literal)}): use an AuditAction member")
            elif _called(node) == "create" and "AuditEvent" in ast.unparse(node.func) and \
                    where != Path("accounts/services.py"):
                problems.append(f"{where}:{node.lineno}: AuditEvent written directly; call audit_record")
    assert calls > 50  # the scan really saw the services' writes
    assert not problems, "\n".join(problems)


def test_action_helpers_return_a_member_for_every_case():
    from governance.models import ActionKind
    from governance.services.actions import WALLET_ACTION_OUTCOMES, wallet_action_audit
    from models_registry.services import FINISH_AUDIT_ACTIONS

    for kind in ActionKind:
        for outcome in WALLET_ACTION_OUTCOMES:
            action = wallet_action_audit(kind, outcome)
            assert isinstance(action, AuditAction) and action.value == f"governance.{kind.value}_{outcome}"
    with pytest.raises(ValueError):
        wallet_action_audit(ActionKind.VOTE, "ignored")
    with pytest.raises(ValueError):
        wallet_action_audit("no-such-kind", "requested")

    # Every state a fine-tune is finished in by `_job_finish` has its action.
    trees = [ast.parse(path.read_text()) for path in sorted((ROOT / "models_registry" / "services").glob("*.py"))]
    states = {kw.value.attr for tree in trees for node in ast.walk(tree)
              if isinstance(node, ast.Call) and _called(node) == "_job_finish"
              for kw in node.keywords if kw.arg == "state"}
    assert states == {"FAILED", "CANCELLED"}
    assert {state.name for state in FINISH_AUDIT_ACTIONS} == states
    assert all(isinstance(action, AuditAction) for action in FINISH_AUDIT_ACTIONS.values())


def test_members_are_unique_and_named_for_their_value():
    assert len(set(AuditAction.values)) == len(AuditAction.values)
    for member in AuditAction:
        assert member.name == member.value.replace(".", "_").upper(), member


@pytest.mark.django_db
def test_audit_record_refuses_an_unknown_action_and_writes_nothing(alice):
    for bad in ("datanet.access_pending", "no.such_action", "", "DATANET.CREATE"):
        with pytest.raises(ValueError, match="add it to accounts.models.AuditAction"):
            audit_record(actor=alice, action=bad, object_type="tests.thing", object_id=1)
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_audit_record_stores_a_member_or_its_value(alice):
    first = audit_record(actor=alice, action=AuditAction.DATANET_CREATE, object_type="tests.thing", object_id=1)
    second = audit_record(actor=None, action="datanet.update", object_type="tests.thing", object_id=1)
    assert first.action is AuditAction.DATANET_CREATE and second.action is AuditAction.DATANET_UPDATE
    stored = dict(AuditEvent.objects.values_list("pk", "action"))
    assert stored == {first.pk: "datanet.create", second.pk: "datanet.update"}
    assert AuditEvent.objects.filter(action=AuditAction.DATANET_CREATE).get().actor == alice


@pytest.mark.django_db
def test_review_and_access_decisions_write_their_members(alice, dora, charlie,
                                                          django_capture_on_commit_callbacks):
    from datanets import services as datanets
    from datanets.models import Record

    datanet = datanets.datanet_create(owner=alice, name="Typed audit", task_type="text-classification",
                                      label_set=["billing", "shipping"], training_access="approval")
    with django_capture_on_commit_callbacks(execute=True):  # the validation job runs on commit
        datanets.contribution_create_from_rows(datanet=datanet, contributor=dora,
                                               rows=[{"text": "charged twice", "label": "billing"},
                                                     {"text": "where is my parcel", "label": "shipping"}])
    first, second = Record.objects.filter(datanet=datanet).order_by("pk").values_list("pk", flat=True)
    assert datanets.records_review(datanet=datanet, reviewer=alice, decision="accept", record_ids=[first]) == 1
    assert datanets.records_review(datanet=datanet, reviewer=alice, decision="reject", reason="off topic",
                                   record_ids=[second]) == 1
    approved = datanets.access_request_create(datanet=datanet, requester=dora, message="for a model")
    datanets.access_request_decide(access_request=approved, actor=alice, approve=True)
    refused = datanets.access_request_create(datanet=datanet, requester=charlie, message="for another")
    datanets.access_request_decide(access_request=refused, actor=alice, approve=False)

    written = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert [a for a in written if a.startswith(("record.", "datanet.access_"))] == [
        "record.accept", "record.reject", "datanet.access_request", "datanet.access_approved",
        "datanet.access_request", "datanet.access_refused"]
    assert set(written) <= set(AuditAction.values)
