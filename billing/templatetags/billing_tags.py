"""Credits for people, and small server-drawn charts (inline SVG: no script, no CDN)."""
from django import template
from django.utils.html import format_html, format_html_join

from billing.services.usage import credits as format_credits

register = template.Library()


@register.filter
def credits(microcredits) -> str:
    """Microcredits as credits: 12345678 -> "12.345678", 10000000000 -> "10,000"."""
    if microcredits is None:
        return "—"
    if microcredits == "":  # a figure the template looked up and did not find: none yet
        microcredits = 0
    return format_credits(microcredits)


@register.filter
def credits_plain(microcredits) -> str:
    """For form fields: no thousands separators."""
    return credits(microcredits).replace(",", "")


@register.simple_tag
def bar_chart(series, label: str, unit: str = "credits", microcredits: bool = True,
              width: int = 720, height: int = 160):
    """A bar per (day, value); each bar has a tooltip with its exact figure."""
    series = list(series)
    if not series:
        return ""
    peak_value = max((value for _, value in series), default=0)
    top = peak_value or 1
    gap, left, bottom = 2, 4, 18
    bar_width = max((width - left) / len(series) - gap, 1)
    bars = []
    for index, (day, value) in enumerate(series):
        bar_height = (height - bottom - 4) * value / top
        shown = credits(value) if microcredits else f"{value:,}"
        bars.append((f"{left + index * (bar_width + gap):.1f}",
                     f"{height - bottom - bar_height:.1f}", f"{bar_width:.1f}",
                     f"{bar_height:.1f}", f"{day:%Y-%m-%d}: {shown} {unit}"))
    rects = format_html_join(
        "", '<rect class="bar" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
        bars)
    first, last = series[0][0], series[-1][0]
    peak = (("peak " + (credits(top) if microcredits else f"{top:,}") + f" {unit} a day")
            if peak_value else "nothing yet")
    return format_html(
        '<figure class="chart"><svg role="img" aria-label="{}" viewBox="0 0 {} {}" '
        'preserveAspectRatio="none" width="100%" height="{}">{}'
        '<text x="4" y="{}" class="axis">{}</text>'
        '<text x="{}" y="{}" text-anchor="end" class="axis">{}</text></svg>'
        '<figcaption>{} — {}</figcaption></figure>',
        label, width, height, height, rects, height - 4, f"{first:%b %d}", width - 4, height - 4,
        f"{last:%b %d}", label, peak)
