import markdown
import nh3
from django import template
from django.utils.safestring import mark_safe

register = template.Library()

ALLOWED_TAGS = {"p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "blockquote", "h2", "h3", "h4", "a", "hr",
                "table", "thead", "tbody", "tr", "th", "td"}


@register.filter
def render_markdown(text):
    """Markdown for descriptions, cleaned by nh3 so no script, raw HTML or javascript: link survives."""
    html = markdown.markdown(text or "", extensions=["tables", "fenced_code"])
    return mark_safe(nh3.clean(html, tags=ALLOWED_TAGS, url_schemes={"http", "https", "mailto"}))


@register.filter
def percent_of(value, total):
    return round(100 * value / total) if total else 0


@register.filter
def get_item(mapping, key):
    return mapping.get(key, "") if hasattr(mapping, "get") else ""
