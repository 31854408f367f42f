"""Display helpers: money in credits and dollars (integers until this edge), docs HTML."""
from decimal import Decimal

from django import template
from django.utils.safestring import mark_safe

from billing.templatetags.billing_tags import credits
from catalog.rendering import render_docs

register = template.Library()
register.filter("credits", credits)  # one way to show money, billing's

MICROCREDITS_PER_CREDIT = 1_000_000
CREDITS_PER_DOLLAR = 10_000


@register.filter
def dollars(microcredits: int) -> str:
    value = Decimal(microcredits or 0) / MICROCREDITS_PER_CREDIT / CREDITS_PER_DOLLAR
    return f"${value.normalize():f}" if value else "$0"


@register.filter
def docs_html(text: str) -> str:
    return mark_safe(render_docs(text))  # noqa: S308 -- sanitized by nh3 in render_docs


@register.filter
def credits_label(microcredits: int) -> str:
    amount = credits(microcredits)
    return f"{amount} credit" if amount == "1" else f"{amount} credits"
