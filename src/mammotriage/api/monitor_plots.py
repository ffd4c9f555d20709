"""The monitoring view's plots, drawn here as SVG: no chart library, nothing from a CDN, no
script (the page's content security policy allows none inline).

One plot per device: its category shares per week as stacked bars (category 1 at the
bottom), the calibration's reference as the first bar, and under them the week's population
stability index against the alert rule's threshold. Colours are given as presentation
attributes (``fill``), which the policy's ``style-src 'self'`` allows; they are the page's
category colours (``static/app.css``: ColorBrewer RdYlGn, reversed). Every text that comes
from the store (site, device, rule names) is escaped.

Pure functions: the week figures in, the SVG text out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from html import escape

from mammotriage.category import CATEGORIES
from mammotriage.monitor.report import DeviceWeek

#: The colour of each category 1-10, as ``--c1``..``--c10`` in static/app.css.
CATEGORY_COLOURS = (
    "#1a9850",
    "#66bd63",
    "#a6d96a",
    "#d9ef8b",
    "#ffffbf",
    "#fee08b",
    "#fdae61",
    "#f46d43",
    "#d73027",
    "#a50026",
)
ALERT_COLOUR = "#ff6b6b"
PSI_COLOUR = "#4da3ff"
#: Geometry (SVG user units; the plot scales to its container).
LEFT = 48
BAR_WIDTH = 30
BAR_GAP = 14
TOP = 50
BARS_HEIGHT = 180
PSI_TOP = TOP + BARS_HEIGHT + 34
PSI_HEIGHT = 80
LEGEND_WIDTH = 110
#: Wide enough for a site and device name in the title line.
MIN_WIDTH = 640
HEIGHT = PSI_TOP + PSI_HEIGHT + 30


def _text(x: float, y: float, text: str, **attributes: str) -> str:
    extra = "".join(
        f' {name.rstrip("_").replace("_", "-")}="{escape(v)}"' for name, v in attributes.items()
    )
    return f'<text x="{x:g}" y="{y:g}"{extra}>{escape(text)}</text>'


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _bar(
    x: float,
    shares: Sequence[float] | None,
    label: str,
    title: str,
    *,
    week: date | None = None,
    counts: Sequence[int] = (),
) -> str:
    """One stacked bar, category 1 at the bottom; each segment's height is its share of
    :data:`BARS_HEIGHT` (``data-share`` says the share it drew)."""
    when = f' data-week="{week.isoformat()}"' if week else ' data-reference="true"'
    parts = [f'<g class="bar" data-label="{escape(label)}"{when}>']
    if shares is None:
        parts.append(
            f'<rect class="empty" x="{x:g}" y="{TOP}" width="{BAR_WIDTH}" '
            f'height="{BARS_HEIGHT}" fill="none" stroke="currentColor" stroke-dasharray="3 3">'
            f"<title>{escape(title)}: no exam scored by the monitored model</title></rect>"
        )
    else:
        bottom: float = TOP + BARS_HEIGHT
        for category, share in zip(CATEGORIES, shares, strict=True):
            height = share * BARS_HEIGHT
            bottom -= height
            count = f" ({counts[category - 1]} exams)" if counts else ""
            parts.append(
                f'<rect class="segment" data-category="{category}" data-share="{share:.6f}" '
                f'x="{x:g}" y="{bottom:.3f}" width="{BAR_WIDTH}" height="{height:.3f}" '
                f'fill="{CATEGORY_COLOURS[category - 1]}">'
                f"<title>{escape(f'{title}, category {category}: {_pct(share)}{count}')}</title>"
                "</rect>"
            )
    parts.append(
        _text(
            x + BAR_WIDTH / 2,
            TOP + BARS_HEIGHT + 14,
            label,
            text_anchor="middle",
            font_size="10",
            fill="currentColor",
        )
    )
    parts.append("</g>")
    return "".join(parts)


def _week_label(week: date) -> str:
    return week.strftime("%d %b")


def _psi_panel(weeks: Sequence[DeviceWeek], xs: Sequence[float], threshold: float | None) -> str:
    """The PSI per week as points joined by a line (gaps where a week has none), and the
    threshold as a dashed line."""
    values = [w.psi if w.psi is not None and math.isfinite(w.psi) else None for w in weeks]
    top_value = max([v for v in values if v is not None] + [threshold or 0.0, 0.1]) * 1.15
    if threshold:
        # A drifted week's PSI can be many times the threshold: the axis stops at four times
        # it, so the threshold stays readable; a point above is drawn at the top, its value
        # written over it.
        top_value = min(top_value, 4 * threshold)
    bottom = PSI_TOP + PSI_HEIGHT

    def y(value: float) -> float:
        return bottom - min(value, top_value) / top_value * PSI_HEIGHT

    right = xs[-1] + BAR_WIDTH if xs else LEFT + BAR_WIDTH
    parts = [
        '<g class="psi">',
        _text(4, PSI_TOP - 8, "PSI", font_size="11", fill="currentColor"),
        f'<line x1="{LEFT - 4}" y1="{bottom}" x2="{right + 4:g}" y2="{bottom}" '
        'stroke="currentColor" stroke-opacity="0.4"/>',
        _text(LEFT - 8, bottom + 4, "0", font_size="10", text_anchor="end", fill="currentColor"),
    ]
    if threshold is not None:
        parts.append(
            f'<line class="threshold" data-threshold="{threshold:g}" x1="{LEFT - 4}" '
            f'y1="{y(threshold):.3f}" x2="{right + 4:g}" y2="{y(threshold):.3f}" '
            f'stroke="{ALERT_COLOUR}" stroke-dasharray="5 4"/>'
        )
        parts.append(
            _text(
                LEFT - 8,
                y(threshold) + 4,
                f"{threshold:g}",
                font_size="10",
                text_anchor="end",
                fill=ALERT_COLOUR,
            )
        )
    runs: list[list[tuple[float, float]]] = [[]]
    for week, x, value in zip(weeks, xs, values, strict=True):
        if value is None:
            runs.append([])
            continue
        centre = (x + BAR_WIDTH / 2, y(value))
        runs[-1].append(centre)
        above = threshold is not None and value > threshold
        parts.append(
            f'<circle class="psi-point{" above" if above else ""}" data-week="{week.week}" '
            f'data-psi="{value:.6f}" cx="{centre[0]:g}" cy="{centre[1]:.3f}" r="3.5" '
            f'fill="{ALERT_COLOUR if above else PSI_COLOUR}">'
            f"<title>{escape(f'week of {week.week.isoformat()}: PSI {value:.3f}')}</title>"
            "</circle>"
        )
        if value > top_value:
            parts.append(
                _text(
                    centre[0],
                    PSI_TOP - 5,
                    f"{value:.2f}",
                    font_size="9",
                    text_anchor="middle",
                    fill=ALERT_COLOUR,
                )
            )
    for run in runs:
        if len(run) > 1:
            points = " ".join(f"{px:g},{py:.3f}" for px, py in run)
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{PSI_COLOUR}" '
                'stroke-width="1.5"/>'
            )
    parts.append("</g>")
    return "".join(parts)


def _legend(x: float) -> str:
    parts = [
        '<g class="legend">',
        _text(x, TOP - 4, "category", font_size="11", fill="currentColor"),
    ]
    for category in CATEGORIES:
        y = TOP + (len(CATEGORIES) - category) * 17
        parts.append(
            f'<rect data-category="{category}" x="{x:g}" y="{y}" width="12" height="12" '
            f'fill="{CATEGORY_COLOURS[category - 1]}"/>'
        )
        parts.append(_text(x + 18, y + 10, str(category), font_size="11", fill="currentColor"))
    parts.append("</g>")
    return "".join(parts)


def device_plot(
    weeks: Sequence[DeviceWeek],
    reference: Sequence[float] | None,
    *,
    psi_threshold: float | None,
    alerts: Sequence[str] = (),
) -> str:
    """The SVG plot of one device's ``weeks`` (oldest first, as the report gives them).

    Parameters
    ----------
    weeks
        The device's weeks; the title names the first one's site and device.
    reference
        The calibration's share per category 1-10 (the first bar, labelled "reference"); None
        when the model is not calibrated (the bar is drawn empty).
    psi_threshold
        The PSI alert rule's threshold (a dashed line); None: no PSI rule.
    alerts
        The rules that fired for this device in the window: the plot is marked (its class
        ``alert`` and a visible line naming them).
    """
    site = weeks[0].site if weeks else ""
    device = weeks[0].device if weeks else ""
    slots = len(weeks) + 1
    xs = [LEFT + (i + 1) * (BAR_WIDTH + BAR_GAP) for i in range(len(weeks))]
    width = max(LEFT + slots * (BAR_WIDTH + BAR_GAP) + LEGEND_WIDTH, MIN_WIDTH)
    classes = "device-plot alert" if alerts else "device-plot"
    label = f"Category shares per week and PSI of {device} at {site}"
    if alerts:
        label += f"; alert: {', '.join(alerts)}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{classes}" '
        f'data-alert="{"true" if alerts else "false"}" viewBox="0 0 {width:g} {HEIGHT}" '
        f'width="{width:g}" height="{HEIGHT}" role="img" aria-label="{escape(label)}" '
        'font-family="system-ui, sans-serif">',
        f"<title>{escape(label)}</title>",
        _text(4, 16, f"{site} · {device}", font_size="13", font_weight="bold", fill="currentColor"),
    ]
    if alerts:
        parts.append(
            f'<g class="alert-mark"><rect x="4" y="23" width="46" height="18" rx="4" '
            f'fill="{ALERT_COLOUR}"/>'
            + _text(
                27,
                36,
                "alert",
                text_anchor="middle",
                font_size="12",
                font_weight="bold",
                fill="#000",
            )
            + "</g>"
        )
        parts.append(
            _text(
                58,
                36,
                f"alert: {', '.join(alerts)}",
                font_size="11",
                fill=ALERT_COLOUR,
                class_="alert-rules",
            )
        )
    # The share axis: 0, 50 and 100 %.
    for share in (0.0, 0.5, 1.0):
        y = TOP + BARS_HEIGHT * (1 - share)
        parts.append(
            f'<line x1="{LEFT - 4}" y1="{y:g}" x2="{xs[-1] + BAR_WIDTH + 4 if xs else LEFT:g}" '
            f'y2="{y:g}" stroke="currentColor" stroke-opacity="0.15"/>'
        )
        parts.append(
            _text(
                LEFT - 8,
                y + 4,
                f"{share:.0%}",
                font_size="10",
                text_anchor="end",
                fill="currentColor",
            )
        )
    parts.append(
        _bar(
            LEFT,
            None if reference is None else list(reference),
            "reference",
            "reference (the calibration population)",
        )
    )
    for week, x in zip(weeks, xs, strict=True):
        title = f"week of {week.week.isoformat()}, {week.scored} exams scored"
        parts.append(
            _bar(x, week.shares, _week_label(week.week), title, week=week.week, counts=week.counts)
        )
    parts.append(_psi_panel(weeks, xs, psi_threshold))
    parts.append(_legend(LEFT + slots * (BAR_WIDTH + BAR_GAP) + 20))
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["CATEGORY_COLOURS", "device_plot"]
