"""`{% load open_amounts %}{{ amount|open }}`: base units shown as OPEN, e.g. 50000000000000000 -> "0.05 OPEN"
(exact, thousands grouped; "—" for no amount). The one way templates show an amount (`rewards.amounts`)."""

from django import template

from rewards.amounts import open_display

register = template.Library()


@register.filter(name="open")
def open_amount(amount) -> str:
    return open_display(amount)
