"""The double-entry core: accounts, posting a balanced transaction, derived balances, the books check.

Conventions: an entry's amount is signed; the entries of one transaction sum to zero; a user account's
balance is the sum of its entries and never negative; system accounts (deposits, grants) go negative by
what they brought in. Only credit accounts keep a cached `balance`, updated with a compare-and-set in
the posting transaction (under `select_for_update` on PostgreSQL), so an overdraft check costs one row.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Sum

from .models import (
    AccountKind,
    ChainClaim,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    PayoutAllocation,
    SettlementShare,
    ShareRole,
)

SYSTEM_KINDS = (AccountKind.TREASURY, AccountKind.DEPOSITS, AccountKind.GRANTS)


class LedgerError(Exception):
    pass


class InsufficientCredit(LedgerError):
    """A charge larger than the payer's credit: refused, nothing written."""

    def __init__(self, *, needed: int, available: int):
        self.needed, self.available = needed, available
        super().__init__(
            f"Not enough OPEN credit: this costs {format_open(needed)} OPEN and the balance is "
            f"{format_open(available)} OPEN. Deposit OPEN or ask an admin for a grant."
        )


def format_open(amount: int) -> str:
    """Base units as an exact decimal OPEN string, e.g. 1500000000000000000 -> '1.5'."""
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(int(amount)), 10**18)
    text = f"{whole:,}"
    if frac:
        text += "." + f"{frac:018d}".rstrip("0")
    return sign + text


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


def post(*, idempotency_key: str, kind: str, lines, memo: str = "") -> LedgerTransaction:
    """Book one balanced transaction. `lines` are (LedgerAccount, signed int); zero lines are dropped.
    Call inside `transaction.atomic`; credit accounts named here must already be locked by the caller
    when the amount is negative (fee_settle does). Raises IntegrityError on a reused idempotency key."""
    merged: dict[int, int] = defaultdict(int)
    by_id = {}
    for account, amount in lines:
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise LedgerError(f"ledger amounts are ints, got {type(amount).__name__}")
        merged[account.pk] += amount
        by_id[account.pk] = account
    if sum(merged.values()) != 0:
        raise LedgerError(f"unbalanced transaction {idempotency_key}: entries sum to {sum(merged.values())}")
    txn = LedgerTransaction.objects.create(idempotency_key=idempotency_key, kind=kind, memo=memo[:200])
    entries = [LedgerEntry(transaction=txn, account_id=pk, amount=amount) for pk, amount in merged.items() if amount]
    LedgerEntry.objects.bulk_create(entries)
    for pk, amount in merged.items():
        account = by_id[pk]
        if amount and account.kind == AccountKind.CREDIT:
            _credit_balance_add(account, amount)
    return txn


def _credit_balance_add(account: LedgerAccount, amount: int) -> None:
    # A row the caller read with select_for_update is current; otherwise read it (the CAS below guards).
    if getattr(account, "locked", False):
        current = account.balance
    else:
        current = LedgerAccount.objects.filter(pk=account.pk).values_list("balance", flat=True).get()
    new = current + amount
    if new < 0:
        raise InsufficientCredit(needed=-amount, available=current)
    # Compare-and-set: on SQLite (no row locks) a concurrent writer makes this match nothing.
    if not LedgerAccount.objects.filter(pk=account.pk, balance=current).update(balance=new):
        raise LedgerError(f"credit balance of {account.key} changed concurrently; retry")
    account.balance = new


def sum_amounts(queryset, field_name: str = "amount") -> int:
    """Exact sum of an AmountField: SQL SUM on PostgreSQL (numeric), Python ints on SQLite (text)."""
    if connection.vendor == "sqlite":
        return sum(int(v) for v in queryset.values_list(field_name, flat=True))
    return int(queryset.aggregate(total=Sum(field_name))["total"] or 0)


def grouped_sums(queryset, group_field: str, field_name: str = "amount") -> dict:
    """{group value: exact sum} for an AmountField."""
    if connection.vendor == "sqlite":
        totals: dict = defaultdict(int)
        for group, value in queryset.values_list(group_field, field_name):
            totals[group] += int(value)
        return dict(totals)
    rows = queryset.order_by().values(group_field).annotate(total=Sum(field_name)).values_list(group_field, "total")
    return {group: int(total) for group, total in rows}


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
    negative, cached credit balances equal their entries, unfrozen earnings equal unfrozen settlement
    shares, pending payouts equal allocations minus booked claims, paid out equals booked claims."""
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
        totals: dict[str, int] = defaultdict(int)
        for account in LedgerAccount.objects.all():
            derived = by_account.get(account.pk, 0)
            totals[account.kind] += derived
            if account.kind not in SYSTEM_KINDS and derived < 0:
                problems.append(f"{account.key} is negative: {derived}")
            if account.kind == AccountKind.CREDIT and account.balance != derived:
                problems.append(f"{account.key} cached balance {account.balance} != sum of entries {derived}")
        unfrozen = SettlementShare.objects.filter(epoch__isnull=True)
        expected = {
            AccountKind.EARNINGS: grouped_sums(unfrozen.filter(role=ShareRole.CONTRIBUTOR), "user_id"),
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
