"""What the hardening tests and `bench/fuzz.py` share: a small world made through the real services, and
the schemathesis fuzzer that runs every documented API operation against Django's WSGI app.

The world: the cast of tests/conftest.py (`cast_support.cast_create`): an owner (alice), a curator (bob), a
contributor member (dora), a stranger (charlie) and the staff admin; a public and a private Datanet, each with two published versions, a contribution with rows
waiting for review and a pending training-access request. API keys: one per scope for the owner
(`read`, `contribute`, `train`, `infer`), one with every scope for the owner and for the stranger.

The fuzzer draws, for each operation, cases from schemathesis (schema-valid "positive" and schema-violating
"negative" data, with path parameters either generated or pinned to the world's real objects, so that
cases reach past the 404 of an unknown slug) and a role to send them as. Each case runs in a transaction
that is rolled back (every case meets the same world; on-commit work such as upload validation runs
before the rollback), with throttle counters cleared (rate limits have their own tests). A case fails
when any check fails:

- no 5xx;
- the status code, content type, headers and body conform to the OpenAPI schema;
- schema-violating input is rejected with a 4xx;
- every 4xx body has the documented shape: `{"code": str, "detail": str, "fields": {str: [str]}}`
  (the OpenAI-compatible routes under `/v1/` answer OpenAI's `{"error": {...}}`, as documented there).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

from cast_support import cast_create

SCOPES = ("read", "contribute", "train", "infer")
FUZZ_ROLES = ("anonymous", "key:read", "key:contribute", "key:train", "key:infer", "key:all", "stranger:all")


def sample_rows(n, *, start=0, prefix="Review"):
    things = ["kettle", "lamp", "keyboard", "backpack", "blender", "charger", "umbrella", "monitor"]
    return [
        {"text": f"{prefix} {i}: the {things[i % len(things)]} arrived on day {i * 7 % 31 + 1} and works.",
         "label": "positive" if i % 2 == 0 else "negative"}
        for i in range(start, start + n)
    ]


@dataclass
class World:
    users: dict
    datanets: dict  # visibility -> {"datanet", "contribution", "pending", "access_request"}
    secrets: dict = field(default_factory=dict)  # role -> API key secret

    def headers(self, role: str) -> dict:
        secret = self.secrets.get(role)
        return {"Authorization": f"Bearer {secret}"} if secret else {}

    def anchors(self, visibility: str = "public") -> dict:
        """Path parameter values naming real objects of the world."""
        state = self.datanets[visibility]
        return {
            "slug": state["datanet"].slug,
            "contribution_id": state["contribution"].pk,
            "number": 1,
            "request_id": state["access_request"].pk,
            "user_id": self.users["contributor"].pk,
        }


def build_world(*, run_on_commit) -> World:
    """Create the world through the services. `run_on_commit` is a context manager factory that runs
    on-commit callbacks (upload validation) at its exit: pytest-django's `django_capture_on_commit_callbacks`
    or `TestCase.captureOnCommitCallbacks`."""
    from accounts.services import api_key_create
    from datanets.models import Record, RecordStatus
    from datanets.services import (
        access_request_create,
        contribution_create_from_rows,
        datanet_create,
        membership_set,
        records_review,
        version_publish,
    )

    users = cast_create()
    datanets = {}
    for n, visibility in enumerate(("public", "private")):
        datanet = datanet_create(
            owner=users["owner"], name=f"Sentiment {visibility}", task_type="text-classification",
            label_set=["positive", "negative"], visibility=visibility, training_access="approval",
            summary="Short product reviews labelled by sentiment.", tags=["reviews"],
        )
        membership_set(datanet=datanet, actor=users["owner"], user=users["curator"], role="curator")
        membership_set(datanet=datanet, actor=users["owner"], user=users["contributor"], role="contributor")
        for start, count in ((0, 4), (4, 2)):
            with run_on_commit(execute=True):
                contribution = contribution_create_from_rows(
                    datanet=datanet, contributor=users["contributor"], rows=sample_rows(count, start=start + 100 * n))
            ids = list(Record.objects.filter(contribution=contribution).values_list("pk", flat=True))
            records_review(datanet=datanet, reviewer=users["curator"], record_ids=ids, decision="accept")
            version_publish(datanet=datanet, actor=users["curator"], notes=f"rows {start}+")
        with run_on_commit(execute=True):
            contribution = contribution_create_from_rows(
                datanet=datanet, contributor=users["contributor"],
                rows=sample_rows(3, start=6 + 100 * n) + [{"text": "bad", "label": "maybe"}])
        pending = list(Record.objects.filter(contribution=contribution, status=RecordStatus.PENDING)
                       .values_list("pk", flat=True))
        datanets[visibility] = {
            "datanet": datanet, "contribution": contribution, "pending": pending,
            "access_request": access_request_create(datanet=datanet, requester=users["contributor"], message="model"),
        }
    world = World(users=users, datanets=datanets)
    for scope in SCOPES:
        world.secrets[f"key:{scope}"] = api_key_create(user=users["owner"], name=f"fuzz {scope}", scopes=[scope]).secret
    world.secrets["key:all"] = api_key_create(user=users["owner"], name="fuzz all", scopes=list(SCOPES)).secret
    world.secrets["stranger:all"] = api_key_create(user=users["stranger"], name="fuzz", scopes=list(SCOPES)).secret
    return world


# --- Checks ------------------------------------------------------------------------------------------

def error_shape_problem(path: str, status: int, body: bytes, content_type: str) -> str | None:
    """Why a 4xx/5xx body does not have the documented error shape, or None when it does."""
    if status < 400:
        return None
    if not content_type.startswith("application/json"):
        return f"error {status} is {content_type!r}, not JSON"
    try:
        data = json.loads(body)
    except ValueError:
        return f"error {status} body is not JSON: {body[:200]!r}"
    if path.startswith("/v1/"):
        error = data.get("error") if isinstance(data, dict) else None
        if not (isinstance(error, dict) and isinstance(error.get("message"), str) and isinstance(error.get("type"), str)):
            return f"error {status} is not OpenAI's {{'error': {{message, type, ...}}}}: {data!r:.300}"
        return None
    if not isinstance(data, dict) or set(data) != {"code", "detail", "fields"}:
        return f"error {status} is not {{code, detail, fields}}: {data!r:.300}"
    if not (isinstance(data["code"], str) and data["code"] and isinstance(data["detail"], str) and data["detail"]):
        return f"error {status}: code and detail must be non-empty strings: {data!r:.300}"
    fields = data["fields"]
    if not isinstance(fields, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(m, str) for m in v) for k, v in fields.items()
    ):
        return f"error {status}: fields must map names to lists of messages: {fields!r:.300}"
    return None


def _error_shape_check():
    import schemathesis

    @schemathesis.check
    def lineage_error_shape(ctx, response, case):
        problem = error_shape_problem(
            case.operation.path if case.operation.path.startswith("/v1/") else case.formatted_path,
            response.status_code, response.content, response.headers.get("content-type", [""])[0],
        )
        if problem:
            raise AssertionError(problem)
        return True

    return lineage_error_shape


def fuzz_checks():
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
            response_schema_conformance, negative_data_rejection, _error_shape_check()]


# --- The fuzzer --------------------------------------------------------------------------------------

@dataclass
class FuzzReport:
    cases: int = 0
    seconds: float = 0.0
    by_status: Counter = field(default_factory=Counter)
    by_operation: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)  # (operation, role, message)

    def as_dict(self) -> dict:
        return {"cases": self.cases, "failures": len(self.failures), "seconds": round(self.seconds, 1),
                "cases_per_s": round(self.cases / self.seconds, 1) if self.seconds else None,
                "by_status": dict(sorted((str(k), v) for k, v in self.by_status.items())),
                "operations": len(self.by_operation),
                "failure_samples": [f"{op} as {role}: {msg}" for op, role, msg in self.failures[:20]]}


@contextmanager
def connection_kept_open():
    """Django's WSGI handler closes the database connection when a request finishes; the test client
    switches that off (the connection holds the test's transaction), and so do we while fuzzing."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def load_schema():
    import schemathesis
    from django.core.wsgi import get_wsgi_application

    with connection_kept_open():
        return schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


def _strategies(operation, world: World):
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    params = {name for name in ("slug", "contribution_id", "number", "request_id", "user_id", "receipt_id")
              if "{" + name + "}" in operation.path}
    options = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        options.append(operation.as_strategy(generation_mode=mode))
        if params:
            for visibility in ("public", "private"):
                pinned = {k: v for k, v in world.anchors(visibility).items() if k in params}
                if pinned and mode == GenerationMode.POSITIVE:
                    options.append(operation.as_strategy(generation_mode=mode, path_parameters=pinned))
                elif pinned and len(pinned) < len(params):  # something left to negate
                    options.append(operation.as_strategy(generation_mode=mode, path_parameters=pinned))
            if mode == GenerationMode.NEGATIVE and "slug" in params:
                # Invalid bodies and queries against a real Datanet: the generated slug would 404 first.
                slug = world.anchors("public")["slug"]
                try:
                    options.append(operation.as_strategy(generation_mode=mode, path_parameters={"slug": slug}))
                except Exception:  # noqa: BLE001 - nothing left to negate for this operation
                    pass
    return st.one_of(options)


def fuzz_operation(operation, world: World, report: FuzzReport, *, max_examples: int, roles=FUZZ_ROLES,
                   seed: int | None = 0, run_on_commit=None, roles_seen: set | None = None) -> None:
    """Run `max_examples` cases of one operation; failures are collected in `report`, not raised."""
    from django.core.cache import cache
    from django.db import transaction
    from django.test import TestCase
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st
    from schemathesis.core.failures import FailureGroup
    from transaction_support import rollback_block

    run_on_commit = run_on_commit or TestCase.captureOnCommitCallbacks
    checks = fuzz_checks()
    label = f"{operation.method.upper()} {operation.path}"

    @settings(max_examples=max_examples, derandomize=seed == 0, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck), print_blob=False)
    @given(role=st.sampled_from(roles), case=_strategies(operation, world))
    def run(role, case):
        cache.clear()  # throttle counters: the rate limits have their own tests
        if roles_seen is not None:
            roles_seen.add(role)
        report.cases += 1
        report.by_operation[label] += 1
        headers = world.headers(role)
        with rollback_block():
            try:
                with run_on_commit(execute=True):
                    response = case.call(headers=headers)
                report.by_status[response.status_code] += 1
                case.validate_response(response, checks=checks, headers=headers)
            except FailureGroup as group:
                for failure in group.exceptions:
                    report.failures.append((label, role, f"{failure.title}: {str(failure.message)[:600]} "
                                            f"[{case.method} {case.formatted_path} query={case.query!r:.200} "
                                            f"body={case.body!r:.300}]"))
            except Exception as exc:  # noqa: BLE001 - a crash is a finding, with the case that caused it
                report.failures.append((label, role, f"{type(exc).__name__}: {str(exc)[:600]} "
                                        f"[{case.method} {case.formatted_path} body={case.body!r:.300}]"))
            transaction.set_rollback(True)

    if seed not in (None, 0):
        run = hypothesis_seed(seed)(run)
    started = time.perf_counter()
    try:
        with connection_kept_open():
            run()
    finally:
        report.seconds += time.perf_counter() - started
