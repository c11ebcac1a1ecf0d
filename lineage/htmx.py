"""htmx requests, typed, and the one "partial when htmx" switch every page uses.

`HtmxHttpRequest` is django-htmx's typing recipe: `HtmxMiddleware` sets `request.htmx` (an `HtmxDetails`, falsy
for a plain request) on every request, and a view annotated with this class says so to the type checker.

A page that htmx refreshes in place renders its whole template for a plain request (it works without
JavaScript) and only the fragment htmx swaps for an htmx one: a named partial of the same template
(`{% partialdef %}`, django-template-partials' `template#partial`), or, where the fragment is its own file,
that template."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def page_or_partial(request: HtmxHttpRequest, page: str, *, partial: str | None = None,
                    partial_template: str | None = None) -> str:
    """The template to render: `page` for a plain request; for an htmx one, `page#partial` (a named partial
    of the page) or `partial_template` (a fragment in its own file). Neither given: always the page."""
    if partial and partial_template:
        raise ValueError("Name the partial of the page or a template of its own, not both.")
    if not request.htmx or not (partial or partial_template):
        return page
    return partial_template or f"{page}#{partial}"


def render_page_or_partial(request: HtmxHttpRequest, page: str, context: dict | None = None, *,
                           partial: str | None = None, partial_template: str | None = None,
                           status: int | None = None) -> HttpResponse:
    """`render` with the template `page_or_partial` picks."""
    template = page_or_partial(request, page, partial=partial, partial_template=partial_template)
    return render(request, template, context, status=status)
