"""Rewards admin: the fee policy (saved through the service, which versions it), credit grants
(through `credit_grant`, audited), epochs with close/resume actions, harm holds with release/confirm
actions (through `rewards.holds`, audited), reconciliation issues. Ledger
rows are read-only here: corrections are new transactions, never edits. Amounts are shown and typed in
OPEN (`OpenAmountsAdmin`, also used by the other apps' admins), never in base units."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import connections, router
from django.utils import timezone

from . import holds, services
from .amounts import OpenAmountField, open_display
from .fields import AmountField, is_sqlite
from .models import (
    ChainClaim,
    ChainCursor,
    ChainDeployment,
    ChainDeposit,
    ClaimRelay,
    CreditGrant,
    EarningsHold,
    Epoch,
    FeePolicy,
    FeePolicyVersion,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    PayoutAllocation,
    PayoutLeaf,
    PendingFee,
    PromotionalCredit,
    ReconciliationIssue,
    Settlement,
    SettlementShare,
    SlashBooking,
    SlashRelease,
    SlashShare,
    Wallet,
    WalletNonce,
)


class OpenAmountsAdmin(admin.ModelAdmin):
    """A ModelAdmin that shows amounts in OPEN: the `open_amount_fields` (default: the model's
    `AmountField`s) are shown as "0.05 OPEN" in list columns and wherever they are read-only, and typed in
    OPEN where they are editable (`OpenAmountField`). A list column sorts by its amount on PostgreSQL only: on
    SQLite an `AmountField` is text, and SQLite is never asked to compare amounts (rewards/fields.py)."""

    open_amount_fields: tuple = ()

    def __init__(self, model, admin_site):
        super().__init__(model, admin_site)
        names = self.open_amount_fields or tuple(f.name for f in model._meta.fields if isinstance(f, AmountField))
        self._open_names = {name: f"{name}_open" for name in names}
        for name, display_name in self._open_names.items():
            field = model._meta.get_field(name)

            def show(obj, _name=name):
                return open_display(getattr(obj, _name))

            show.short_description = field.verbose_name
            if not (isinstance(field, AmountField) and is_sqlite(connections[router.db_for_read(model)])):
                # On SQLite an AmountField column is text: sorting it there would put "9" after "10".
                show.admin_order_field = name
            setattr(self, display_name, show)

    def _shown_in_open(self, request, obj) -> set:
        names = set(self._open_names)
        if obj is not None and not self.has_change_permission(request, obj):
            return names  # a view-only page: every amount is read-only
        return names & set(super().get_readonly_fields(request, obj))

    def get_list_display(self, request):
        return [self._open_names.get(name, name) if isinstance(name, str) else name
                for name in super().get_list_display(request)]

    def get_readonly_fields(self, request, obj=None):
        shown = self._shown_in_open(request, obj)
        return [*super().get_readonly_fields(request, obj), *(self._open_names[name] for name in sorted(shown))]

    def get_fields(self, request, obj=None):
        shown = self._shown_in_open(request, obj)
        fields = [self._open_names[name] if name in shown else name for name in super().get_fields(request, obj)]
        return list(dict.fromkeys(name for name in fields if name not in shown))

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in self._open_names:
            return OpenAmountField(label=db_field.verbose_name.capitalize(), required=not db_field.blank,
                                   help_text="In OPEN, up to 18 decimals (e.g. 0.05).")
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class ReadOnlyAdmin(OpenAmountsAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(FeePolicy)
class FeePolicyAdmin(admin.ModelAdmin):
    list_display = ("__str__", "fallback", "updated_at")
    readonly_fields = ("version", "updated_at")

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not FeePolicy.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        version = services.fee_policy_set(actor=request.user, protocol_bps=obj.protocol_bps, owner_bps=obj.owner_bps,
                                          contributors_bps=obj.contributors_bps, fallback=obj.fallback)
        obj.pk, obj.version = 1, version.version
        messages.info(request, f"Fee policy version {version.version} is now in force.")


@admin.register(FeePolicyVersion)
class FeePolicyVersionAdmin(ReadOnlyAdmin):
    list_display = ("version", "protocol_bps", "owner_bps", "contributors_bps", "fallback", "created_by", "created_at")


@admin.register(CreditGrant)
class CreditGrantAdmin(OpenAmountsAdmin):
    list_display = ("user", "amount", "reason", "promotional", "granted_by", "created_at")
    list_filter = ("promotional",)
    fields = ("user", "amount", "reason", "promotional")
    raw_id_fields = ("user",)

    def has_change_permission(self, request, obj=None):
        return obj is None

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        try:
            grant = services.credit_grant(actor=request.user, user=obj.user, amount=int(obj.amount), reason=obj.reason,
                                          promotional=obj.promotional)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return
        obj.pk = grant.pk


@admin.register(PromotionalCredit)
class PromotionalCreditAdmin(OpenAmountsAdmin):
    """What is left of each user's promotional credit (read-only: grants and fees move it)."""

    list_display = ("user", "remaining")
    search_fields = ("user__email", "user__username")
    raw_id_fields = ("user",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class EntryInline(admin.TabularInline):
    model = LedgerEntry
    extra = 0
    can_delete = False
    fields = readonly_fields = ("account", "amount_open")

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="amount")
    def amount_open(self, obj):
        return open_display(obj.amount)


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ("idempotency_key", "kind", "memo", "created_at")
    list_filter = ("kind",)
    search_fields = ("idempotency_key", "memo")
    inlines = [EntryInline]

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("key", "kind", "user", "balance", "held")
    list_filter = ("kind",)
    search_fields = ("key",)


@admin.register(Settlement)
class SettlementAdmin(ReadOnlyAdmin):
    list_display = ("inference_id", "payer", "model_owner", "fee", "protocol_amount", "owner_amount",
                    "contributors_amount", "policy", "created_at")
    search_fields = ("inference_id", "model_version_hash", "receipt_id")


@admin.register(PendingFee)
class PendingFeeAdmin(ReadOnlyAdmin):
    """Fees held on payers' credit and waiting for the next settlement batch (normally seconds)."""

    list_display = ("inference_id", "payer", "model_owner", "fee", "policy", "created_at")
    search_fields = ("inference_id", "model_version_hash", "receipt_id")


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = ("address", "user", "linked_at", "effective_at")
    search_fields = ("address",)


@admin.action(description="Close an epoch now (or resume the unfinished one)")
def close_epoch(modeladmin, request, queryset):
    from .tasks import chain_epoch_close

    chain_epoch_close.delay_on_commit(request.user.pk)
    messages.info(request, "The epoch close is queued on the chain queue.")


@admin.register(Epoch)
class EpochAdmin(ReadOnlyAdmin):
    list_display = ("number", "state", "increase", "total_cumulative", "root", "frozen_at", "closed_at", "last_error")
    actions = [close_epoch]
    # Django hides the action bar on an empty changelist unless the full count is switched off; the first
    # epoch must be closable before any epoch row exists.
    show_full_result_count = False

    def changelist_view(self, request, extra_context=None):
        # Let the action run with no row selected (it picks the epoch itself).
        if request.method == "POST" and request.POST.get("action") == "close_epoch" and not request.POST.getlist(
                admin.helpers.ACTION_CHECKBOX_NAME):
            post = request.POST.copy()
            post.setlist(admin.helpers.ACTION_CHECKBOX_NAME, [str(e.pk) for e in Epoch.objects.all()[:1]] or ["0"])
            request.POST = post
        return super().changelist_view(request, extra_context)

    def has_change_permission(self, request, obj=None):
        return obj is None and request.user.is_staff


@admin.register(ChainDeployment)
class ChainDeploymentAdmin(ReadOnlyAdmin):
    list_display = ("chain_id", "genesis_hash", "token_address", "distributor_address", "created_at")


@admin.action(description="Mark resolved (after fixing the cause by hand)")
def resolve(modeladmin, request, queryset):
    from accounts.services import AuditAction, audit_record

    for issue in queryset.filter(resolved_at__isnull=True):
        issue.resolved_at = timezone.now()
        issue.save(update_fields=["resolved_at"])
        audit_record(actor=request.user, action=AuditAction.REWARDS_ISSUE_RESOLVE, target=issue, details={"kind": issue.kind})


@admin.register(ReconciliationIssue)
class ReconciliationIssueAdmin(ReadOnlyAdmin):
    list_display = ("kind", "detail", "epoch", "created_at", "resolved_at")
    list_filter = ("kind", ("resolved_at", admin.EmptyFieldListFilter))
    actions = [resolve]

    def has_change_permission(self, request, obj=None):
        return obj is None and request.user.is_staff




def _decide_holds(request, queryset, decide, done: str) -> None:
    decided, refused = 0, []
    for hold in queryset.order_by("pk"):
        try:
            decide(hold=hold, actor=request.user, note=f"{done} in the admin by {request.user.get_username()}")
            decided += 1
        except ValidationError as exc:
            refused.append(f"hold {hold.pk}: {' '.join(exc.messages)}")
    if decided:
        messages.success(request, f"{decided} hold(s) {done}.")
    for problem in refused:
        messages.error(request, problem)


@admin.action(description="Release: no harm, pay the held earnings in the next epoch", permissions=["change"])
def release_holds(modeladmin, request, queryset):
    _decide_holds(request, queryset, holds.earnings_hold_release, "released")


@admin.action(description="Confirm: harm found, withhold this model's unpaid earnings", permissions=["change"])
def confirm_holds(modeladmin, request, queryset):
    _decide_holds(request, queryset, holds.earnings_hold_confirm, "confirmed")


@admin.register(EarningsHold)
class EarningsHoldAdmin(OpenAmountsAdmin):
    """Holds are opened by attribution and decided only through the actions (audited); never edited."""

    list_display = ("user", "model_version_hash", "state", "harm", "flagged_rows", "created_at", "decided_at",
                    "decided_by")
    list_filter = ("state", "created_at", "decided_at")
    search_fields = ("user__username", "user__email", "model_version_hash", "reason")
    readonly_fields = ("user", "model_version_hash", "state", "reason", "evidence", "created_at", "updated_at",
                       "decided_at", "decided_by", "decision_note", "withheld_amount")
    list_select_related = ("user", "decided_by")
    actions = [release_holds, confirm_holds]

    @admin.display(description="harm")
    def harm(self, obj):
        return (obj.evidence or {}).get("harm")

    @admin.display(description="rows")
    def flagged_rows(self, obj):
        rows = obj.rows
        return ", ".join(rows[:5]) + (f" (+{len(rows) - 5})" if len(rows) > 5 else "")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # The changelist (and its actions) needs the change permission; a hold itself is read-only.
        return obj is None and super().has_change_permission(request)


# --- The rest of the rewards tables, read-only: written by the ledger, the settlement batches, the epoch
# close and the chain watchers, never by hand (each is listed so staff can find and follow a payment).

@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("transaction", "account", "amount")
    list_filter = ("account__kind",)
    search_fields = ("account__key", "transaction__idempotency_key", "transaction__memo")
    list_select_related = ("transaction", "account")
    show_full_result_count = False


@admin.register(SettlementShare)
class SettlementShareAdmin(ReadOnlyAdmin):
    list_display = ("settlement", "user", "role", "ppm", "amount", "epoch", "withheld_by")
    list_filter = ("role", ("epoch", admin.EmptyFieldListFilter))
    search_fields = ("settlement__inference_id", "settlement__model_version_hash", "user__username")
    list_select_related = ("settlement", "user", "epoch")
    show_full_result_count = False


@admin.register(WalletNonce)
class WalletNonceAdmin(ReadOnlyAdmin):
    list_display = ("nonce", "user", "created_at", "expires_at", "used_at")
    list_filter = (("used_at", admin.EmptyFieldListFilter),)
    search_fields = ("nonce", "user__username")
    list_select_related = ("user",)


@admin.register(ChainCursor)
class ChainCursorAdmin(ReadOnlyAdmin):
    list_display = ("name", "deployment", "next_block")
    list_filter = ("name",)
    search_fields = ("name", "deployment__distributor_address")


@admin.register(ChainDeposit)
class ChainDepositAdmin(ReadOnlyAdmin):
    list_display = ("tx_hash", "log_index", "block_number", "sender", "user", "amount", "created_at")
    list_filter = ("deployment__chain_id",)
    search_fields = ("tx_hash", "sender", "user__username")
    list_select_related = ("user",)


@admin.register(PayoutAllocation)
class PayoutAllocationAdmin(ReadOnlyAdmin):
    list_display = ("epoch", "user", "address", "amount")
    list_filter = ("epoch",)
    search_fields = ("address", "user__username")
    list_select_related = ("epoch", "user")


@admin.register(PayoutLeaf)
class PayoutLeafAdmin(ReadOnlyAdmin):
    list_display = ("epoch", "address", "user", "cumulative_amount")
    list_filter = ("epoch",)
    search_fields = ("address", "user__username")
    list_select_related = ("epoch", "user")


@admin.register(ChainClaim)
class ChainClaimAdmin(ReadOnlyAdmin):
    list_display = ("tx_hash", "log_index", "block_number", "address", "user", "amount", "cumulative", "created_at")
    list_filter = ("deployment__chain_id",)
    search_fields = ("tx_hash", "address", "user__username")
    list_select_related = ("user",)


@admin.register(ClaimRelay)
class ClaimRelayAdmin(ReadOnlyAdmin):
    list_display = ("user", "state", "amount", "relayed_accounts", "tx_hash", "requested_at", "finished_at")
    list_filter = ("state",)
    search_fields = ("user__username", "tx_hash", "error")
    list_select_related = ("user",)


@admin.register(SlashBooking)
class SlashBookingAdmin(ReadOnlyAdmin):
    """Slashed stakes booked as the honest contributors' earnings (`services.slash_book`)."""

    list_display = ("key", "datanet_id", "datanet_version", "slashed_user", "amount", "created_at")


@admin.register(SlashRelease)
class SlashReleaseAdmin(ReadOnlyAdmin):
    """Booked slashes paid out of the Datanet's pool to the treasury (`services.slash_releases_send`)."""

    list_display = ("key", "datanet_id", "amount", "released_through", "state", "attempts", "tx_hash", "finished_at")
    list_filter = ("state",)


@admin.register(SlashShare)
class SlashShareAdmin(ReadOnlyAdmin):
    list_display = ("booking", "user", "rows", "amount", "epoch")
    list_filter = (("epoch", admin.EmptyFieldListFilter),)
