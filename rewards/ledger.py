"""The double-entry core: accounts, posting a balanced transaction, derived balances, the books check.

Conventions: an entry's amount is signed; the entries of one transaction sum to zero; a user account's
balance is the sum of its entries and never negative; system accounts (deposits, grants) go negative by
what they brought in. Only credit accounts keep a cached `balance`, updated with a compare-and-set in
the posting transaction (under `select_for_update` on PostgreSQL), and a cached `held`: the fees
recorded against it and not settled yet. A fee is held with one conditional update (`credit_hold`:
refused unless `balance - held` covers it) and later charged in a batch (`post_settled_fees`: balance
and held drop together), so `held <= balance` always and a settlement can never overdraw.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import F, Sum, Value

from .amounts import format_open
from .fields import AmountField
from .models import (
    AccountKind,
    ChainClaim,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    PayoutAllocation,
    PendingFee,
    Settlement,
    SettlementShare,
    ShareRole,
    SlashBooking,
    SlashShare,
)

SYSTEM_KINDS = (AccountKind.TREASURY, AccountKind.DEPOSITS, AccountKind.GRANTS, AccountKind.SLASHED_STAKES)


class LedgerError(Exception):
    pass


class InsufficientCredit(LedgerError):
    """A charge larger than the payer's credit: refused, nothing written."""

    def __init__(self, *, needed: int, available: int):
        from .selectors import deposit_page_url

        self.needed, self.available = needed, available
        super().__init__(
            f"Not enough OPEN credit: this costs {format_open(needed)} OPEN and the balance is "
            f"{format_open(available)} OPEN. Add credit at {deposit_page_url()} (deposit OPEN from your linked "
            "wallet), or ask an admin for a grant."
        )


def account_key(kind: str, user_id: int | None = None) -> str:
    return str(kind) if user_id is None else f"{kind}:{user_id}"


def accounts_get(pairs) -> dict[str, LedgerAccount]:
    """Accounts for (kind, user_id) pairs, creating missing ones; keyed by `account_key`."""
    wanted = {account_key(kind, user_id): (kind, user_id) for kind, user_id in pairs}
    found = {a.key: a for a in LedgerAccount.objects.filter(key__in=list(wanted))}
    missing = [LedgerAccount(key=key, kind=kind, user_id=user_id)
               for key, (kind, user_id) in wanted.items() if key not in found]
    if missing:
        LedgerAccount.objects.bulk_create(missing, ignore_conflicts=True)
        found = {a.key: a for a in LedgerAccount.objects.filter(key__in=list(wanted))}
    return found


def _merge(idempotency_key: str, lines) -> tuple[dict[int, int], dict[int, LedgerAccount]]:
    merged: dict[int, int] = defaultdict(int)
    by_id = {}
    for account, amount in lines:
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise LedgerError(f"ledger amounts are ints, got {type(amount).__name__}")
        merged[account.pk] += amount
        by_id[account.pk] = account
    if sum(merged.values()) != 0:
        raise LedgerError(f"unbalanced transaction {idempotency_key}: entries sum to {sum(merged.values())}")
    return merged, by_id


def _create(idempotency_key: str, kind: str, merged: dict[int, int], memo: str) -> LedgerTransaction:
    txn = LedgerTransaction.objects.create(idempotency_key=idempotency_key, kind=kind, memo=memo[:200])
    LedgerEntry.objects.bulk_create([LedgerEntry(transaction=txn, account_id=pk, amount=amount)
                                     for pk, amount in merged.items() if amount])
    return txn


def post(*, idempotency_key: str, kind: str, lines, memo: str = "") -> LedgerTransaction:
    """Book one balanced transaction. `lines` are (LedgerAccount, signed int); zero lines are dropped.
    Call inside `transaction.atomic`. A credit account may only be credited here (deposits, grants):
    fees are charged through `credit_hold` and `post_settled_fees`. Raises IntegrityError on a reused
    idempotency key."""
    merged, by_id = _merge(idempotency_key, lines)
    for pk, amount in merged.items():
        if amount < 0 and by_id[pk].kind == AccountKind.CREDIT:
            raise LedgerError(f"{by_id[pk].key}: credit is charged by holding a fee and settling it, not by post()")
    txn = _create(idempotency_key, kind, merged, memo)
    for pk, amount in merged.items():
        account = by_id[pk]
        if amount and account.kind == AccountKind.CREDIT:
            _credit_balance_add(account, amount)
    return txn


def _credit_balance_add(account: LedgerAccount, amount: int) -> None:
    current = LedgerAccount.objects.filter(pk=account.pk).values_list("balance", flat=True).get()
    # Compare-and-set: on SQLite (no row locks) a concurrent writer makes this match nothing.
    if not LedgerAccount.objects.filter(pk=account.pk, balance=current).update(balance=current + amount):
        raise LedgerError(f"credit balance of {account.key} changed concurrently; retry")
    account.balance = current + amount


def _amount(value: int) -> Value:
    return Value(value, output_field=AmountField())


def credit_available(*, user_id: int) -> int:
    """Spendable credit: the cached balance less the fees held for settlement (0 without an account)."""
    row = LedgerAccount.objects.filter(key=account_key(AccountKind.CREDIT, user_id)).values_list("balance", "held").first()
    return row[0] - row[1] if row else 0


def credit_hold(*, user_id: int, amount: int) -> None:
    """Hold `amount` of the user's credit for a fee recorded now and settled later, or raise
    `InsufficientCredit` (and change nothing) when `balance - held` does not cover it. Call inside the
    transaction that records the fee. On PostgreSQL one conditional UPDATE (its row lock serialises a
    payer's concurrent holds); SQLite cannot add its text amounts, so there it is read + compare-and-set."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise LedgerError(f"a hold is a positive int, got {amount!r}")
    accounts = LedgerAccount.objects.filter(key=account_key(AccountKind.CREDIT, user_id))
    if connection.vendor != "sqlite":
        if accounts.filter(balance__gte=F("held") + _amount(amount)).update(held=F("held") + _amount(amount)):
            return
        raise InsufficientCredit(needed=amount, available=credit_available(user_id=user_id))
    row = accounts.values_list("balance", "held").first()
    if row is None or row[0] - row[1] < amount:
        raise InsufficientCredit(needed=amount, available=row[0] - row[1] if row else 0)
    if not accounts.filter(balance=row[0], held=row[1]).update(held=row[1] + amount):
        raise LedgerError(f"credit of user {user_id} changed concurrently; retry")


def post_settled_fees(*, idempotency_key: str, lines, held_released: dict[int, int], memo: str = "",
                      before_charge=None) -> LedgerTransaction | None:
    """Book a batch of held fees as one balanced transaction. `lines` are (LedgerAccount, signed int) as
    for `post`; a credit account's line is minus the fees charged to it, and `held_released` maps each
    credit account id to what its `held` drops by (those fees, plus any fee released without a charge).
    `before_charge(txn)` runs after the entries are written and before the credit rows are touched (the
    caller's own inserts go there): the credit rows are locked in id order and updated last, so a
    concurrent hold waits only for the commit, and two settling batches cannot deadlock."""
    merged, by_id = _merge(idempotency_key, lines)
    deltas = {pk: (merged.get(pk, 0), held_released.get(pk, 0)) for pk in set(held_released) | {
        pk for pk, account in by_id.items() if account.kind == AccountKind.CREDIT}}
    for pk, (charge, release) in deltas.items():
        if charge > 0 or release < -charge:
            raise LedgerError(f"credit account {pk}: a settlement charges at most what it releases from held")
    txn = _create(idempotency_key, LedgerTransaction.Kind.FEE, merged, memo) if any(merged.values()) else None
    if before_charge is not None:
        before_charge(txn)
    _credit_settle(deltas)
    return txn


def _credit_settle(deltas: dict[int, tuple[int, int]]) -> None:
    deltas = {pk: d for pk, d in deltas.items() if d != (0, 0)}
    if not deltas:
        return
    ids = sorted(deltas)
    if connection.vendor != "sqlite":
        from .bulk import execute_bound

        list(LedgerAccount.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk", flat=True))
        table = LedgerAccount._meta.db_table
        # The holds make an overdraft impossible; the WHERE checks it anyway (at no extra round trip),
        # because the alternative would be a silent one.
        updated = execute_bound(
            f"UPDATE {table} AS a SET balance = a.balance + d.charge, held = a.held - d.release "
            f"FROM unnest(%s::bigint[], %s::text[]::numeric[], %s::text[]::numeric[]) AS d(id, charge, release) "
            f"WHERE a.id = d.id AND a.held >= d.release AND a.balance + d.charge >= a.held - d.release "
            f"RETURNING a.id",
            [ids, [str(deltas[pk][0]) for pk in ids], [str(deltas[pk][1]) for pk in ids]], fetch=True)
        if len(updated) != len(ids):
            raise LedgerError("a fee settlement would overdraw a credit account; nothing was booked")
        return
    for pk in ids:
        charge, release = deltas[pk]
        balance_now, held_now = LedgerAccount.objects.filter(pk=pk).values_list("balance", "held").get()
        balance_new, held_new = balance_now + charge, held_now - release
        if held_new < 0 or balance_new < held_new:
            raise LedgerError("a fee settlement would overdraw a credit account; nothing was booked")
        if not LedgerAccount.objects.filter(pk=pk, balance=balance_now, held=held_now).update(
                balance=balance_new, held=held_new):
            raise LedgerError(f"credit account {pk} changed concurrently; retry")


def sum_amounts(queryset, field_name: str = "amount") -> int:
    """Exact sum of an AmountField: SQL SUM on PostgreSQL (numeric), Python ints on SQLite (text)."""
    if connection.vendor == "sqlite":
        return sum(int(v) for v in queryset.values_list(field_name, flat=True))
    return int(queryset.aggregate(total=Sum(field_name))["total"] or 0)


def grouped_sums(queryset, group_field: str | tuple, field_name: str = "amount") -> dict:
    """{group value: exact sum} for an AmountField; a tuple of fields groups by (value, value, ...)."""
    fields = group_field if isinstance(group_field, tuple) else (group_field,)
    key = (lambda row: tuple(row[:-1])) if isinstance(group_field, tuple) else (lambda row: row[0])
    if connection.vendor == "sqlite":
        totals: dict = defaultdict(int)
        for row in queryset.values_list(*fields, field_name):
            totals[key(row)] += int(row[-1])
        return dict(totals)
    rows = queryset.order_by().values(*fields).annotate(total=Sum(field_name)).values_list(*fields, "total")
    return {key(row): int(row[-1]) for row in rows}


def balance(*, kind: str, user=None) -> int:
    """Derived balance (sum of entries) of one account; 0 when it has none."""
    user_id = getattr(user, "pk", user)
    return sum_amounts(LedgerEntry.objects.filter(account__key=account_key(kind, user_id)))


def balances_by_user(kind: str) -> dict[int, int]:
    return grouped_sums(LedgerEntry.objects.filter(account__kind=kind), "account__user_id")


def system_balances() -> dict[str, int]:
    return {str(kind): balance(kind=kind) for kind in SYSTEM_KINDS}


@dataclass
class LedgerCheck:
    ok: bool
    problems: list[str] = field(default_factory=list)
    transactions: int = 0
    entries: int = 0
    totals: dict[str, int] = field(default_factory=dict)


def ledger_check() -> LedgerCheck:
    """Prove the books balance: every transaction and the whole ledger sum to zero, no user account is
    negative, cached credit balances equal their entries, held credit equals the payer's pending fees
    and never exceeds the balance, every fee transaction's entries equal the splits of its settlements
    and every settlement's split sums to its fee, every slash booking's entries equal its shares and its
    amount, unfrozen earnings equal unfrozen settlement and slash shares, pending payouts equal allocations
    minus booked claims, paid out equals booked claims."""
    problems: list[str] = []
    with transaction.atomic():
        by_txn = grouped_sums(LedgerEntry.objects.all(), "transaction_id")
        unbalanced = {txn: total for txn, total in by_txn.items() if total != 0}
        for txn, total in sorted(unbalanced.items())[:20]:
            problems.append(f"transaction {txn} entries sum to {total}, not 0")
        grand = sum(by_txn.values())
        if grand != 0:
            problems.append(f"all entries sum to {grand}, not 0")
        by_account = grouped_sums(LedgerEntry.objects.all(), "account_id")
        held_expected = grouped_sums(PendingFee.objects.all(), "payer_id", "fee")
        totals: dict[str, int] = defaultdict(int)
        accounts = {}
        for account in LedgerAccount.objects.all():
            accounts[account.pk] = account
            derived = by_account.get(account.pk, 0)
            totals[account.kind] += derived
            if account.kind not in SYSTEM_KINDS and derived < 0:
                problems.append(f"{account.key} is negative: {derived}")
            if account.kind == AccountKind.CREDIT:
                if account.balance != derived:
                    problems.append(f"{account.key} cached balance {account.balance} != sum of entries {derived}")
                if account.held != held_expected.pop(account.user_id, 0):
                    problems.append(f"{account.key} holds {account.held} for fees, not the sum of its pending fees")
                if not 0 <= account.held <= account.balance:
                    problems.append(f"{account.key} holds {account.held} of a balance of {account.balance}")
        for user_id, amount in held_expected.items():
            problems.append(f"user {user_id} has {amount} in pending fees and no credit account holding them")
        problems += _fee_transaction_problems(accounts)
        problems += _slash_transaction_problems(accounts)
        unfrozen = SettlementShare.objects.filter(epoch__isnull=True)
        earnings = grouped_sums(unfrozen.filter(role=ShareRole.CONTRIBUTOR), "user_id")
        for user_id, amount in grouped_sums(SlashShare.objects.filter(epoch__isnull=True), "user_id").items():
            earnings[user_id] = earnings.get(user_id, 0) + amount
        expected = {
            AccountKind.EARNINGS: earnings,
            AccountKind.OWNER_EARNINGS: grouped_sums(unfrozen.filter(role=ShareRole.OWNER), "user_id"),
        }
        allocated = grouped_sums(PayoutAllocation.objects.all(), "user_id")
        claimed = grouped_sums(ChainClaim.objects.filter(transaction__isnull=False), "user_id")
        expected[AccountKind.PENDING] = {u: allocated.get(u, 0) - claimed.get(u, 0) for u in set(allocated) | set(claimed)}
        expected[AccountKind.PAID_OUT] = claimed
        for kind, wanted in expected.items():
            actual = balances_by_user(kind)
            for user_id in set(wanted) | set(actual):
                if wanted.get(user_id, 0) != actual.get(user_id, 0):
                    problems.append(f"{kind} of user {user_id}: ledger {actual.get(user_id, 0)}, "
                                    f"expected {wanted.get(user_id, 0)}")
        count = LedgerTransaction.objects.count()
        entries = LedgerEntry.objects.count()
    return LedgerCheck(ok=not problems, problems=problems, transactions=count, entries=entries, totals=dict(totals))


def _fee_transaction_problems(accounts: dict[int, LedgerAccount]) -> list[str]:
    """Each fee transaction books a batch of settlements: its entry on each account must equal what those
    settlements' splits put there, and each settlement's split must add up to its fee."""
    problems = []
    by_key = {account.key: pk for pk, account in accounts.items()}
    expected: dict[tuple, int] = defaultdict(int)

    def add(txn_id, key, amount):
        expected[(txn_id, by_key.get(key, key))] += amount

    settlements = Settlement.objects.all()
    for (txn_id, payer_id), fees in grouped_sums(settlements, ("transaction_id", "payer_id"), "fee").items():
        add(txn_id, account_key(AccountKind.CREDIT, payer_id), -fees)
    for txn_id, protocol in grouped_sums(settlements, "transaction_id", "protocol_amount").items():
        add(txn_id, account_key(AccountKind.TREASURY), protocol)
    for txn_id, promotional in grouped_sums(settlements, "transaction_id", "promotional_amount").items():
        if promotional:
            add(txn_id, account_key(AccountKind.GRANTS), promotional)
    role_kind = {ShareRole.OWNER: AccountKind.OWNER_EARNINGS, ShareRole.CONTRIBUTOR: AccountKind.EARNINGS}
    shares = SettlementShare.objects.all()
    for (txn_id, role, user_id), amount in grouped_sums(
            shares, ("settlement__transaction_id", "role", "user_id")).items():
        add(txn_id, account_key(role_kind[role], user_id), amount)
    actual = grouped_sums(LedgerEntry.objects.filter(transaction__kind=LedgerTransaction.Kind.FEE),
                          ("transaction_id", "account_id"))
    for key in sorted(set(expected) | set(actual), key=str):
        if expected.get(key, 0) != actual.get(key, 0):
            problems.append(f"fee transaction {key[0]}: account {key[1]} has {actual.get(key, 0)}, its settlements "
                            f"put {expected.get(key, 0)} there")
    shared = grouped_sums(shares, "settlement_id")
    for pk, fee, protocol, owner, contributors, promotional in settlements.values_list(
            "pk", "fee", "protocol_amount", "owner_amount", "contributors_amount", "promotional_amount"):
        if protocol + owner + contributors + promotional != fee or owner + contributors != shared.get(pk, 0):
            problems.append(f"settlement {pk}: the split does not add up to its fee {fee}")
    return problems[:50]


def _slash_transaction_problems(accounts: dict[int, LedgerAccount]) -> list[str]:
    """Each slash booking is one transaction: minus its amount on the slashed-stakes account and each share
    on its contributor's earnings, and its shares add up to its amount; nothing else books on slashed stakes."""
    problems = []
    by_key = {account.key: pk for pk, account in accounts.items()}
    slashed = by_key.get(account_key(AccountKind.SLASHED_STAKES))
    expected: dict[tuple, int] = defaultdict(int)
    bookings = SlashBooking.objects.all()
    for txn_id, amount in bookings.values_list("transaction_id", "amount"):
        expected[(txn_id, slashed)] -= int(amount)
    for (txn_id, user_id), amount in grouped_sums(SlashShare.objects.all(),
                                                  ("booking__transaction_id", "user_id")).items():
        expected[(txn_id, by_key.get(account_key(AccountKind.EARNINGS, user_id)))] += amount
    actual = grouped_sums(LedgerEntry.objects.filter(transaction__kind=LedgerTransaction.Kind.SLASH),
                          ("transaction_id", "account_id"))
    for key in sorted(set(expected) | set(actual), key=str):
        if expected.get(key, 0) != actual.get(key, 0):
            problems.append(f"slash transaction {key[0]}: account {key[1]} has {actual.get(key, 0)}, its booking "
                            f"puts {expected.get(key, 0)} there")
    shared = grouped_sums(SlashShare.objects.all(), "booking_id")
    for pk, amount in bookings.values_list("pk", "amount"):
        if shared.get(pk, 0) != int(amount):
            problems.append(f"slash booking {pk}: its shares add up to {shared.get(pk, 0)}, not its amount {amount}")
    if slashed is not None:
        outside = LedgerEntry.objects.filter(account_id=slashed).exclude(transaction__kind=LedgerTransaction.Kind.SLASH)
        if outside.exists():
            problems.append("the slashed-stakes account has entries outside slash bookings")
    return problems[:50]
