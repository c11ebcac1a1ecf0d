from django.shortcuts import render

from . import selectors


def proposal_list(request):
    return render(request, "governance/proposal_list.html",
                  {"rows": selectors.proposals_list(), "indexed_up_to": selectors.indexed_up_to()})


def proposal_detail(request, pk: int):
    return render(request, "governance/proposal_detail.html", selectors.proposal_detail(pk=pk))
