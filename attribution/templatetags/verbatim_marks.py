"""`{% load verbatim_marks %}{{ receipt.output|verbatim_marks:spans }}`: an answer with the parts that repeat a
training row word for word wrapped in `<mark>` (the union of the receipt's `verbatim_spans`, which may overlap),
every character escaped."""

from django import template
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter(name="verbatim_marks")
def verbatim_marks(text, spans) -> str:
    text = str(text or "")
    covered: list[list[int]] = []
    for span in sorted(spans or [], key=lambda s: (s["start"], s["end"])):
        start, end = max(0, int(span["start"])), min(len(text), int(span["end"]))
        if start >= end:
            continue
        if covered and start <= covered[-1][1]:
            covered[-1][1] = max(covered[-1][1], end)
        else:
            covered.append([start, end])
    parts, at = [], 0
    for start, end in covered:
        parts.append(conditional_escape(text[at:start]))
        parts.append(format_html("<mark>{}</mark>", text[start:end]))
        at = end
    parts.append(conditional_escape(text[at:]))
    return mark_safe("".join(str(part) for part in parts))  # noqa: S308 - every part is escaped above
