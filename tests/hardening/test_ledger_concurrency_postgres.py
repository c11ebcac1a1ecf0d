"""Issue #17, item 8c: the ledger's concurrency guarantees, on PostgreSQL, with real concurrent connections.

The guarantees rest on PostgreSQL's row locks (`SELECT ... FOR UPDATE SKIP LOCKED`, a conditional `UPDATE`
that serialises a payer's holds, the epoch lease), which SQLite does not have, so these tests always run on
PostgreSQL, whatever the suite's default database is: the module creates its own database on the server the
suite uses (`DATABASE_URL` when that is PostgreSQL, else `LINEAGE_TEST_POSTGRES_URL`, default
postgres://postgres@127.0.0.1:5432/postgres), migrates it and drops it at the end. An unreachable server fails
the module; it is never skipped.

The racers are `RACERS` spawned processes (`ledger_race_support`), each a whole Django process with its own
connection; they start each race together at a barrier and call the real services:

* `fee_record` on one payer: exactly floor(balance / price) fees are held, the rest refused, never an overdraft;
* `fee_settle_batch` side by side: each racer books a batch while the others hold theirs open, so SKIP LOCKED
  must hand them disjoint rows (without it the second waits for the first, which waits at the barrier, and the
  barrier breaks); then all drain a shared backlog: every fee settled exactly once, books balanced;
* `epoch_close` raced against itself over a real JSON-RPC chain: one epoch, closed, funded once, one root.
"""

import multiprocessing
import os
import uuid
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import ledger_race_support as racer
import psycopg
import pytest
from faults_support import ChainNode

pytestmark = pytest.mark.slow

RACERS = 6
PRICE = 10**15
OPEN = 10**18


def _server_url() -> str:
    """A maintenance-database URL on the PostgreSQL server this suite uses."""
    from django.db import connection

    if connection.vendor == "postgresql":
        db = connection.settings_dict
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        return f"postgresql://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/postgres"
    return os.environ.get("LINEAGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


class Racers:
    def __init__(self, pool, size: int) -> None:
        self.pool, self.size = pool, size

    def call(self, function, **kwargs):
        """Run `function(**kwargs)` in one of the racer processes (seeding, reports)."""
        return self.pool.apply(_call, (function, kwargs))

    def race(self, function, **kwargs) -> list:
        """Run `function(**kwargs)` in every racer at once (each waits at the shared barrier)."""
        return self.pool.map(_call, [(function, kwargs)] * self.size, chunksize=1)


def _call(function, kwargs=None):
    if kwargs is None:  # pool.map passes one tuple
        function, kwargs = function
    return function(**kwargs)


@pytest.fixture(scope="module")
def chain_node():
    node = ChainNode()
    yield node
    node.close()


@pytest.fixture(scope="module")
def racers(chain_node, tmp_path_factory):
    server = _server_url()
    name = f"lineage_race_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"These tests need PostgreSQL (the ledger's guarantees are PostgreSQL's row locks); set "
                    f"LINEAGE_TEST_POSTGRES_URL to a server where databases can be created. {server}: {exc}")
    treasury = chain_node.client.local_chain.accounts[0]
    root = tmp_path_factory.mktemp("ledger-race")
    env = {
        "DATABASE_URL": _with_database(server, name).replace("postgresql://", "postgres://", 1),
        "DJANGO_SETTINGS_MODULE": "lineage.settings", "LINEAGE_VAR_DIR": str(root / "var"),
        "MEDIA_ROOT": str(root / "media"), "CELERY_TASK_ALWAYS_EAGER": "1", "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1", "CHAIN_RPC_URL": chain_node.url, "CHAIN_ID": str(chain_node.client.chain_id),
        "CHAIN_PRIVATE_KEY": "0x" + bytes(treasury.key).hex(), "REWARDS_RELAY_THRESHOLD": "0",
    }
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(RACERS, initializer=racer.init, initargs=(env, context.Barrier(RACERS)))
    try:
        racers = Racers(pool, RACERS)
        assert racers.call(racer.migrate) == ["postgresql", name]
        # Every racer is a process of its own, set up, and they meet at the barrier.
        assert len(set(racers.race(racer.pid))) == RACERS
        yield racers
    finally:
        pool.terminate()
        pool.join()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_concurrent_fee_records_on_one_payer_hold_exactly_what_the_credit_covers(racers):
    balance = 7 * PRICE + PRICE // 2
    seeded = racers.call(racer.seed_payer, name="hold-payer", balance=balance)
    attempts = 4
    outcomes = racers.race(racer.race_fee_record, payer_id=seeded["payer"], owner_id=seeded["owner"], price=PRICE,
                           attempts=attempts, tag="hold")
    recorded = [inference_id for outcome in outcomes for inference_id in outcome["recorded"]]
    assert len(recorded) == balance // PRICE == 7  # floor(balance / price), whoever got there first
    assert sum(outcome["refused"] for outcome in outcomes) == RACERS * attempts - 7
    books = racers.call(racer.books, tag="hold")
    assert books["pending"] == sorted(recorded)
    assert books["credit"]["hold-payer"] == {"balance": balance, "held": 7 * PRICE}  # held <= balance

    assert racers.call(racer.settle_all) == 7
    books = racers.call(racer.books, tag="hold")
    assert books["settled"] == sorted(recorded) and books["pending"] == [] and books["settled_twice"] == []
    assert books["credit"]["hold-payer"] == {"balance": balance - 7 * PRICE, "held": 0}
    assert books["ledger_ok"], books["ledger_problems"]


def test_skip_locked_settlers_take_disjoint_fees_and_never_settle_one_twice(racers):
    batch = 5
    # One payer per fee: concurrent batches then share no credit row, so a racer can only wait on another
    # through the pending rows themselves, which is what SKIP LOCKED must prevent.
    seeded = racers.call(racer.seed_fees, tag="skip", payers=RACERS * batch, fees_per_payer=1, price=PRICE,
                         owner_name="skip-owner", contributor_name="skip-contributor")
    held_open = racers.race(racer.race_settle_holding, limit=batch)
    assert [outcome["settled"] for outcome in held_open] == [batch] * RACERS  # all booked while all held theirs
    taken = [inference_id for outcome in held_open for inference_id in outcome["inference_ids"]]
    assert len(taken) == len(set(taken)) == RACERS * batch  # disjoint
    assert sorted(taken) == sorted(seeded["inference_ids"])

    # A backlog shared by a few payers, drained by every racer at once in small batches.
    backlog = racers.call(racer.seed_fees, tag="drain", payers=3, fees_per_payer=40, price=PRICE,
                          owner_name="skip-owner", contributor_name="skip-contributor")
    drained = racers.race(racer.race_settle_drain, limit=7)
    assert sum(outcome["settled"] for outcome in drained) == 120  # each fee counted by exactly one settler
    books = racers.call(racer.books, tag="drain")
    assert books["settled"] == sorted([*backlog["inference_ids"], "drain-warm"])
    assert books["settled_twice"] == [] and books["pending"] == []
    for p in range(3):  # each payer was charged exactly its 40 fees (plus the warm-up fee for the first)
        left = PRICE * 41 - PRICE * (40 + (p == 0))
        assert books["credit"][f"drain-payer-{p}"] == {"balance": left, "held": 0}
    assert books["ledger_ok"], books["ledger_problems"]


def test_racing_epoch_closes_close_exactly_one_epoch_and_fund_it_once(racers, chain_node):
    wallets = chain_node.client.local_chain.accounts[2:4]
    racers.call(racer.seed_epoch, wallet_keys={"epoch-alice": "0x" + bytes(wallets[0].key).hex(),
                                               "epoch-bob": "0x" + bytes(wallets[1].key).hex()},
                price=OPEN, fees=4)
    outcomes = racers.race(racer.race_epoch_close)
    assert {outcome["outcome"] for outcome in outcomes} <= {"epoch", "nothing", "blocked"}, outcomes
    closed = [outcome for outcome in outcomes if outcome["outcome"] == "epoch"]
    assert closed and {(o["number"], o["state"]) for o in closed} == {(1, "closed")}, outcomes
    report = SimpleNamespace(**racers.call(racer.epoch_report))
    assert report.epochs == [(1, "closed")]
    assert report.allocations == 2
    assert report.roots_posted == 1
    assert report.fundings == report.total_cumulative  # one transfer, of exactly what the tree pays
    assert racers.call(racer.books)["ledger_ok"]
