"""`{% load open_amounts %}`: how templates show amounts of OPEN (`rewards.amounts`).

* `{{ amount|open }}`: base units shown as OPEN, exact, e.g. 50000000000000000 -> "0.05 OPEN" (thousands
  grouped; "—" for no amount).
* `{{ amount|open_rounded }}`: rounded to 6 decimals for reading, with the exact amount kept in the markup:
  6000000000000000004 -> `<data value="6.000000000000000004" title="6.000000000000000004 OPEN">6 OPEN</data>`
  ("< 0.000001 OPEN" for a tiny non-zero amount; "—" for no amount). Every page that shows an amount uses it
  (rewards, governance, playground, model cards); CSV exports and the API keep exact amounts. Another unit of
  the same 18 decimals is named as the argument: `{{ votes|open_rounded:"vOPEN" }}`.
* `{{ amount|open_rounded_text }}`: the same rounded text without markup, where no element may go (an
  `<option>`'s label); put the exact `|open` beside it in a `title`.
"""

from django import template
from django.utils.html import format_html

from rewards.amounts import format_open, format_open_rounded, open_display

register = template.Library()


@register.filter(name="open")
def open_amount(amount) -> str:
    return open_display(amount)


@register.filter(name="open_rounded")
def open_rounded(amount, unit="OPEN") -> str:
    if amount is None or amount == "":
        return "—"
    amount = int(amount)
    return format_html('<data value="{}" title="{} {}">{} {}</data>', format_open(amount, grouping=False),
                       format_open(amount), unit, format_open_rounded(amount), unit)


@register.filter(name="open_rounded_text")
def open_rounded_text(amount, unit="OPEN") -> str:
    if amount is None or amount == "":
        return "—"
    return f"{format_open_rounded(int(amount))} {unit}"
