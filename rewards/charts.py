"""A small server-rendered SVG bar chart (no JavaScript, no CDN)."""

from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from .ledger import format_open

# Bars stay bar-shaped with few days of data (one day used to fill the whole width as a black block).
MAX_BAR_WIDTH = 40
AXIS_HEIGHT = 18


def earnings_svg(series, *, width: int = 640, height: int = 160) -> str:
    """`series` is [(date, base units)]; returns an accessible inline <svg> with a day axis."""
    if not series:
        return mark_safe('<p class="muted">No earnings yet.</p>')
    peak = max(amount for _, amount in series) or 1
    gap = 4
    bar = max(2, min(MAX_BAR_WIDTH, (width - gap * len(series)) // len(series)))
    plot_height = height - AXIS_HEIGHT
    bars = []
    for i, (day, amount) in enumerate(series):
        h = max(1, amount * (plot_height - 14) // peak)
        bars.append((i * (bar + gap), plot_height - h, bar, h, f"{day:%d %b %Y}: {format_open(amount)} OPEN"))
    rects = format_html_join(
        "", '<rect class="chart-bar" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>', bars)
    first, last = series[0][0], series[-1][0]
    labels = format_html('<text class="chart-axis" x="0" y="{}">{}</text>', height - 4, f"{first:%d %b}")
    if last != first:
        labels += format_html('<text class="chart-axis" x="{}" y="{}" text-anchor="end">{}</text>',
                              (len(series) - 1) * (bar + gap) + bar, height - 4, f"{last:%d %b}")
    peak_label = format_html('<text class="chart-axis" x="{}" y="10" text-anchor="end">peak {} OPEN</text>',
                             width, format_open(peak))
    return format_html(
        '<svg class="chart" role="img" viewBox="0 0 {} {}" width="100%" height="{}" aria-label="{}">{}{}{}</svg>',
        width, height, height, f"Earnings per day over {len(series)} day(s), peak {format_open(peak)} OPEN",
        rects, labels, peak_label)
