"""Pages: the index list, a receipt explained in plain words, a model version's valuation report."""

from django.http import Http404
from django.shortcuts import redirect, render

from models_registry import selectors as model_selectors

from . import selectors


def index(request):
    return render(request, "attribution/index.html",
                  {"rows": selectors.indexes_for_visible_models(user=request.user)})


def receipt(request, receipt_id):
    try:
        receipt = selectors.receipt_get(receipt_id=receipt_id)
    except Http404:
        from lineage import hooks

        # A retrieval app's receipt shares this id space (earnings and fees link every receipt here).
        for foreign_receipt in hooks.foreign_receipt.callbacks():
            if (found := foreign_receipt(receipt_id=receipt_id)) is not None:
                return redirect(found)

        # A queued answer's receipt id is given out at once; the attribution worker stores it seconds later.
        if not any(awaited(receipt_id=receipt_id) is not None for awaited in hooks.receipt_awaited.callbacks()):
            raise
        return render(request, "attribution/receipt_pending.html", {"receipt_id": receipt_id}, status=202)
    version = receipt.model_version
    return render(request, "attribution/receipt.html", {
        "receipt": receipt,
        "version": version,
        "show_query": selectors.receipt_shows_query(receipt=receipt, user=request.user),
        "rows": selectors.explain_receipt_rows(receipt=receipt, user=request.user),
        "shares": selectors.explain_shares(receipt=receipt, user=request.user),
        "basis": selectors.payout_basis(receipt=receipt),
        "negative": selectors.explain_negative(receipt=receipt),
    })


def valuation(request, slug):
    version = model_selectors.model_version_get_visible(slug=slug, user=request.user)
    report = selectors.valuation_for(model_version=version)
    context = {"version": version, "index": selectors.index_for(model_version=version), "report": report}
    if report is not None:
        explain = lambda rows: selectors.explain_rows(rows=rows, model_version=version, user=request.user)  # noqa: E731
        context.update(helpful=explain(report.most_helpful), harmful=explain(report.most_harmful),
                       mislabeled=explain(report.likely_mislabeled),
                       contributors=selectors.explain_contributor_values(report=report))
    return render(request, "attribution/valuation.html", context)
