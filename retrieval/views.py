"""Search pages: the search panel of a version page (its index's state, a search box) and the results,
whole for a plain request, the results alone for htmx. Thin: permissions from datanets' selectors, reads
from this app's selectors."""

from django.conf import settings
from django.shortcuts import render

from datanets import selectors as datanet_selectors
from lineage.htmx import HtmxHttpRequest, render_page_or_partial

from . import engine, selectors, services
from .errors import IndexCorrupt, IndexNotReady, NotSearchable, QueryEmbeddingUnavailable


def version_search(request: HtmxHttpRequest, slug, number):
    datanet = datanet_selectors.datanet_get_visible(slug=slug, user=request.user)
    version = datanet_selectors.version_get(datanet=datanet, number=number)
    query = request.GET.get("q", "").strip()[: settings.RETRIEVAL_MAX_QUERY_CHARS]
    mode = request.GET.get("mode", "hybrid")
    mode = mode if mode in selectors.MODES else "hybrid"
    context = {"datanet": datanet, "perms": datanet_selectors.datanet_permissions(datanet=datanet, user=request.user),
               "version": version, "index": selectors.index_for(version=version), "q": query,
               "mode": mode, "results": None, "problem": None}
    if request.GET.get("panel"):  # the panel polls itself while the index is being built
        return render(request, "retrieval/_panel.html", context)
    if query:
        try:
            context["results"] = selectors.version_search(version=version, query=query, k=10, mode=mode)
        except (NotSearchable, IndexNotReady, engine.RetrievalError, QueryEmbeddingUnavailable) as exc:
            context["problem"] = getattr(exc, "message", None) or str(exc)
        except IndexCorrupt as exc:
            services.index_fail_corrupt(index=context["index"], reason=str(exc))
            context["problem"] = str(exc)
    elif "q" in request.GET:
        context["problem"] = "Type some words to search for."
    return render_page_or_partial(request, "retrieval/search.html", context, partial_template="retrieval/_results.html")
