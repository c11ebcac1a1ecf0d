"""Reads for Proof of Attribution, and how receipts and valuations are explained to a person.

Rows are explained through `datanets.selectors`: a row's text is shown only to someone who may view
its Datanet (a private Datanet's rows appear as "a row of a private Datanet").
"""

import dataclasses
from dataclasses import dataclass

from django.http import Http404

from accounts import selectors as accounts_selectors
from datanets import selectors as datanet_selectors
from models_registry import selectors as model_selectors

from .models import AttributionIndex, AttributionReceipt, ValuationReport

PPM = 1_000_000


def index_for(*, model_version) -> AttributionIndex | None:
    return AttributionIndex.objects.filter(model_version_id=model_version.pk).first()


def indexes_for_visible_models(*, user) -> list[tuple]:
    """(model version, its index or None) for every model the user may see, newest first."""
    versions = list(model_selectors.model_versions_visible_to(user=user))
    indexes = {i.model_version_id: i for i in AttributionIndex.objects.filter(model_version__in=versions)}
    return [(version, indexes.get(version.pk)) for version in versions]


def receipt_get(*, receipt_id: str) -> AttributionReceipt:
    """Receipts are capability links (random uuids): whoever holds the id may read the attribution."""
    receipt = AttributionReceipt.objects.select_related("model_version", "model_version__owner").filter(
        receipt_id=str(receipt_id)).first()
    if receipt is None:
        raise Http404("No such receipt.")
    return receipt


def receipt_shows_query(*, receipt: AttributionReceipt, user) -> bool:
    """The input and output are private to whoever asked, the model's owner and staff."""
    if not getattr(user, "is_authenticated", False):
        return False
    return user.is_staff or user.pk in (receipt.requester_id, receipt.model_version.owner_id)


def valuation_for(*, model_version) -> ValuationReport | None:
    return ValuationReport.objects.filter(model_version_id=model_version.pk).first()


@dataclass(frozen=True)
class ExplainedRow:
    row_id: str
    score: float
    contributor_id: str
    contributor_name: str
    visible: bool
    excerpt: str
    label: str
    datanet_name: str
    datanet_slug: str
    version_number: int | None
    paid_percent: float | None = None  # on a receipt's most-like rows: the row's part of the pool, if listed as paid


@dataclass(frozen=True)
class ExplainedShare:
    contributor_id: str
    name: str
    ppm: int
    rows: list  # ExplainedRow of the rows that earned the share; score = the row's percent of the whole pool

    @property
    def percent(self) -> float:
        return round(100 * self.ppm / PPM, 2)


@dataclass(frozen=True)
class PayoutBasis:
    """Why the contributor pool went where it went, for the receipt page."""

    basis: str  # "attribution", "valuation" or "rows"
    reason: str
    fdr: float | None
    groups_discovered: int
    credit_groups: int | None

    @property
    def fdr_percent(self) -> str:
        return "" if self.fdr is None else f"{100 * self.fdr:g}%"


def payout_basis(*, receipt: AttributionReceipt) -> PayoutBasis:
    payload = receipt.payload or {}
    method = payload.get("method") or {}
    return PayoutBasis(basis=payload.get("basis", "attribution"), reason=receipt.empty_reason or "",
                       fdr=method.get("fdr"), groups_discovered=int(payload.get("groups_discovered") or 0),
                       credit_groups=method.get("credit_groups"))


def _names(ids) -> dict[str, str]:
    return {str(pk): name for pk, name in accounts_selectors.users_public_names(user_ids=ids).items()}


def receipt_contributor_names(*, receipt: AttributionReceipt) -> dict[str, str]:
    """{contributor id: public name} of everyone a receipt names (shares, scores, rows, negative influence)."""
    ids = {str(c) for field in (receipt.contributor_shares_ppm, receipt.contributor_scores, receipt.contributor_rows,
                                receipt.negative_influence) for c in (field or {})}
    ids |= {str(row.get("contributor_id")) for row in receipt.top_rows or []}
    ids = {c for c in ids if c.isdigit()}
    names = _names(ids)
    return {c: names.get(c, f"user {c}") for c in sorted(ids, key=int)}


def explain_rows(*, rows: list[dict], model_version, user) -> list[ExplainedRow]:
    """Receipt/valuation rows (`{row_id, contributor_id, score}`) with text, Datanet, version, contributor."""
    records = datanet_selectors.records_by_uid(uids=[r["row_id"] for r in rows])
    names = _names({r["contributor_id"] for r in rows})
    versions = {d["datanet"]: d["version"] for d in (model_version.lineage or {}).get("datanets", [])}
    explained = []
    for row in rows:
        record = records.get(row["row_id"])
        visible = record is not None and datanet_selectors.datanet_permissions(datanet=record.datanet, user=user).can_view
        explained.append(ExplainedRow(
            row_id=row["row_id"], score=row["score"], contributor_id=row["contributor_id"],
            contributor_name=names.get(str(row["contributor_id"]), f"user {row['contributor_id']}"), visible=visible,
            excerpt=record.excerpt if visible else "",
            label=record.label if visible else "",
            datanet_name=record.datanet.name if visible else ("a private Datanet" if record else "a deleted row"),
            datanet_slug=record.datanet.slug if visible else "",
            version_number=versions.get(record.datanet.slug) if visible else None,
        ))
    return explained


def explain_receipt_rows(*, receipt: AttributionReceipt, user) -> list[ExplainedRow]:
    """A receipt's most-like rows (its top rows by score), each marked with its part of the pool when the
    payout listed it among the rows that earned a share. The two lists differ by design: a row can score high
    and earn nothing (a later copy, a row flagged as harmful or worth nothing on held-out data, a row whose
    credit group did not beat its noise level) and a paid row need not be among the few highest scores."""
    paid = (receipt.payload or {}).get("paid_rows") or {}
    paid_percent = {row["row_id"]: 100 * row["credit"] for rows in paid.values() for row in rows}
    return [dataclasses.replace(row, paid_percent=paid_percent.get(row.row_id))
            for row in explain_rows(rows=receipt.top_rows, model_version=receipt.model_version, user=user)]


def explain_shares(*, receipt: AttributionReceipt, user) -> list[ExplainedShare]:
    """Each paid contributor with the rows that earned the share (as the payout credited them)."""
    shares = receipt.contributor_shares_ppm or {}
    paid = (receipt.payload or {}).get("paid_rows") or {}
    listed = [{"row_id": row["row_id"], "contributor_id": c, "score": 100 * row["credit"]}
              for c, rows in paid.items() for row in rows]
    explained = explain_rows(rows=listed, model_version=receipt.model_version, user=user)
    by_contributor: dict[str, list] = {}
    for row in explained:
        by_contributor.setdefault(str(row.contributor_id), []).append(row)
    names = _names(shares)
    ordered = sorted(shares.items(), key=lambda item: (-item[1], item[0]))
    return [ExplainedShare(c, names.get(c, f"user {c}"), int(ppm), by_contributor.get(str(c), []))
            for c, ppm in ordered]


def explain_negative(*, receipt: AttributionReceipt) -> list[tuple[str, float]]:
    negative = receipt.negative_influence or {}
    names = _names(negative)
    return [(names.get(c, f"user {c}"), value) for c, value in sorted(negative.items(), key=lambda i: -i[1])]


def explain_contributor_values(*, report: ValuationReport) -> list[tuple[str, float]]:
    values = report.contributor_values or {}
    names = _names(values)
    return [(names.get(c, f"user {c}"), v) for c, v in sorted(values.items(), key=lambda i: -i[1])]


def index_fallback_shares(*, version_hashes) -> dict[str, dict[int, int]]:
    """{model version hash: {user id: ppm}}: who an answer without attribution pays, as recorded when the
    version's index was built (the training data pro rata to its positive value on the evaluation split,
    flagged rows, later copies and worthless groups excluded). Versions never indexed are left out; an index
    that failed its re-hash later keeps the weights it was built with (they were computed before the fault)."""
    out: dict[str, dict[int, int]] = {}
    for version_hash, shares in AttributionIndex.objects.filter(
            model_version_hash__in=set(version_hashes)).exclude(fallback_shares_ppm={}).values_list(
            "model_version_hash", "fallback_shares_ppm"):
        weights = {int(uid): int(ppm) for uid, ppm in shares.items() if str(uid).isdigit() and int(ppm) > 0}
        if weights:
            out[version_hash] = weights
    return out
