"""API fuzzing with schemathesis through Django's WSGI app (no network): every documented operation, as
anonymous and with API keys of every scope. See `hardening_support` for the world, the roles and the
checks (no 5xx; status, content type, headers and body as documented; invalid input refused with a 4xx;
every error in the `{code, detail, fields}` shape). Derandomised: the same cases on every run.
`bench/fuzz.py` runs the same fuzzer with thousands of cases."""

import pytest
from hardening_support import FUZZ_ROLES, FuzzReport, build_world, fuzz_operation, load_schema

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 12


def test_fuzz_every_documented_operation(django_capture_on_commit_callbacks):
    world = build_world(run_on_commit=django_capture_on_commit_callbacks)
    schema = load_schema()
    operations = [result.ok() for result in schema.get_all_operations()]
    report = FuzzReport()
    roles_seen = set()
    for operation in operations:
        fuzz_operation(operation, world, report, max_examples=EXAMPLES_PER_OPERATION,
                       run_on_commit=django_capture_on_commit_callbacks, roles_seen=roles_seen)
    assert len(operations) >= 30 and len(report.by_operation) == len(operations)
    assert report.cases >= 300
    assert roles_seen == set(FUZZ_ROLES)
    statuses = set(report.by_status)
    assert {200, 400, 401, 403, 404} <= statuses, statuses  # cases got past authentication and validation
    assert not report.failures, f"{len(report.failures)} of {report.cases} cases failed:\n" + "\n".join(
        f"{op} as {role}: {msg}" for op, role, msg in report.failures[:40])
