"""A rollback block for tests that is not part of the code under test.

Top-level services open `transaction.atomic(durable=True)`, which refuses to run inside another atomic
block, except the ones Django's TestCase opens around each test. A test that wraps a request or a world
build in its own block, only to roll it back, stands where TestCase's block stands: `test_atomic()`
marks it the same way, so durable services behave under it as they do under the per-test transaction.
"""

from django.db import transaction


def rollback_block(using=None):
    """`transaction.atomic()` that durable blocks may nest in, like the TestCase's own per-test block."""
    block = transaction.atomic(using=using)
    block._from_testcase = True  # the flag Django's TestCase sets on its atomics (django.test.testcases)
    return block
