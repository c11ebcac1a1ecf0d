"""The review queue's per-row controls: accept (after an optional relabel) or reject one row. An htmx
request gets the row back, with the queue's progress swapped out of band, so the page never reloads."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from lineage.htmx import HtmxHttpRequest

from . import review_actions, selectors, services


def row_labels_chosen(post, record_ids) -> dict[int, str]:
    """{row id: label} from the queue's label pickers (`label_<id>`) of these rows; an empty picker is no
    choice in a bulk accept (the row keeps its label)."""
    return {int(pk): post[f"label_{pk}"] for pk in record_ids if post.get(f"label_{pk}", "").strip()}


@login_required
@require_POST
def review_row_decide(request: HtmxHttpRequest, slug, pk):
    datanet = selectors.datanet_get_visible(slug=slug, user=request.user)
    perms = selectors.datanet_permissions(datanet=datanet, user=request.user)
    if not perms.can_curate:
        raise PermissionDenied("Only this Datanet's curators review rows.")
    record = selectors.review_record_get(datanet=datanet, pk=pk)
    decision = request.POST.get("decision", "")
    label = request.POST.get(f"label_{pk}")  # None where the row has no label picker
    reason = request.POST.get(f"reason_{pk}", "")
    error = done = ""
    try:
        if decision == "accept" and label is not None:
            review_actions.records_accept_relabelled(datanet=datanet, reviewer=request.user, record_ids=[pk],
                                                     labels={pk: label})
        else:
            services.records_review(datanet=datanet, reviewer=request.user, record_ids=[pk], decision=decision,
                                    reason=reason)
        done = f"Row {pk} {'accepted' if decision == 'accept' else 'rejected'}."
    except ValidationError as exc:
        error = " ".join(exc.messages)
    if not request.htmx:
        (messages.error if error else messages.success)(request, error or done)
        return redirect("datanets:review", slug=slug)
    if error:
        # Nothing is lost: the row comes back as the curator left it, with the reason they typed.
        record.label = label if label is not None else record.label
        typed_reason = reason
    else:
        record = selectors.review_record_get(datanet=datanet, pk=pk)
        typed_reason = ""
    context = {"datanet": datanet, "perms": perms, "r": record, "row_error": error, "row_reason": typed_reason,
               "row_done": done, "progress": selectors.review_progress(datanet=datanet)}
    return render(request, "datanets/review.html#row_response", context)
