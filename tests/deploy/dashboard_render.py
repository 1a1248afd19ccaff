"""A picture of the Grafana dashboard without Grafana: its panels, evaluated against Prometheus.

No Grafana server can be had on the machines this project is built and tested on, so the
README's dashboard picture is drawn by this module instead: it reads
`deploy/grafana/dashboards/touchpoint.json` (panel types, titles, grid positions, units,
thresholds, legends and every target's PromQL) and evaluates each target against a real
Prometheus over a time range, the way Grafana's Prometheus datasource does (range queries for
time series, instant queries at the range's end for `instant` targets, Grafana's
`$__rate_interval`, `$__interval` and `$__range`). The result is one self-contained HTML page of
inline SVG, with a caption that says what it is; headless Chromium takes its screenshot.

It draws what the dashboard asks for, not how Grafana would style every pixel.
"""

from __future__ import annotations

import html
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: GET /api/v1/<path> with query parameters, returning the answer's `data`.
PrometheusApi = Callable[..., Any]

#: Grafana's grid: 24 columns; one height unit is 30 px plus an 8 px gap.
COLUMNS = 24
UNIT_PX = 30
GAP_PX = 8
#: Grafana's classic palette, in its order.
PALETTE = ("#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9",
           "#705DA0", "#37872D", "#FADE2A", "#447EBC", "#C15C17", "#890F02", "#0A437C")  # fmt: skip
NAMED_COLORS = {"green": "#73BF69", "red": "#F2495C", "orange": "#FF9830", "yellow": "#FADE2A",
                "blue": "#5794F2", "purple": "#B877D9", "text": "#CCCCDC"}  # fmt: skip
#: What Grafana applies to a panel that sets no thresholds.
DEFAULT_THRESHOLDS: list[dict[str, Any]] = [
    {"color": "green", "value": None},
    {"color": "red", "value": 80},
]
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class Series:
    """One series a target returned: its legend and its points (epoch seconds, value)."""

    legend: str
    points: list[tuple[float, float]]

    def last(self) -> float | None:
        """The last finite value (Grafana's `lastNotNull`)."""
        for _, v in reversed(self.points):
            if math.isfinite(v):
                return v
        return None


@dataclass(frozen=True)
class Drawn:
    """One panel as drawn: its type, title and the series each of its targets returned."""

    type: str
    title: str
    series: list[Series]


def grafana_macros(start: float, end: float, width_px: int, scrape_s: float) -> dict[str, str]:
    """Grafana's interval macros for a panel `width_px` wide over [start, end] (its rules: the
    interval is the range over the panel's data points, at least the scrape interval; the rate
    interval is the larger of interval + scrape interval and four scrape intervals)."""
    interval = max(scrape_s, (end - start) / max(width_px, 1))
    rate = max(interval + scrape_s, 4 * scrape_s)
    return {
        "$__rate_interval": f"{math.ceil(rate)}s",
        "$__interval": f"{math.ceil(interval)}s",
        "$__range": f"{math.ceil(end - start)}s",
    }


def legend_of(fmt: str | None, labels: dict[str, str]) -> str:
    """A series' name from the target's legendFormat, else its labels (as Grafana names it)."""
    if fmt:
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), fmt)
    shown = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return labels.get("__name__", "") + ("{" + shown + "}" if shown else "")


def evaluate(
    panel: dict[str, Any], api: PrometheusApi, start: float, end: float, scrape_s: float
) -> Drawn:
    """Run every target of a panel against Prometheus, as Grafana would."""
    width_px = int(panel["gridPos"]["w"] / COLUMNS * 1600)
    macros = grafana_macros(start, end, width_px, scrape_s)
    step = max(scrape_s, (end - start) / max(width_px, 1))
    series: list[Series] = []
    for target in panel.get("targets", []):
        expr = target["expr"]
        for macro, value in macros.items():
            expr = expr.replace(macro, value)
        fmt = target.get("legendFormat")
        if target.get("instant"):
            data = api("query", query=expr, time=f"{end:.3f}")
            for r in data["result"]:
                at, value = r["value"]
                series.append(Series(legend_of(fmt, r["metric"]), [(float(at), float(value))]))
        else:
            data = api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}",
                       step=f"{step:.3f}")  # fmt: skip
            for r in data["result"]:
                points = [(float(t), float(v)) for t, v in r["values"]]
                series.append(Series(legend_of(fmt, r["metric"]), points))
    return Drawn(panel["type"], panel.get("title", ""), series)


# Formatting values by Grafana unit.


def _number(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    if a >= 0.01:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return f"{v:.2g}"


def _short(v: float) -> str:
    for div, suffix in ((1e9, " Bil"), (1e6, " Mil"), (1e3, " K")):
        if abs(v) >= div:
            return _number(v / div) + suffix
    return _number(v)


def formatted(v: float | None, unit: str | None) -> str:
    """A value as Grafana writes it for the panel's unit (`reqps`, `s`, `short`, none)."""
    if v is None or not math.isfinite(v):
        return "No data"
    if unit == "reqps":
        return _short(v) + " req/s"
    if unit == "s":
        if abs(v) < 1 and v != 0:
            return _number(v * 1000) + " ms"
        return _number(v) + " s"
    return _short(v)


def _color(name: str) -> str:
    return NAMED_COLORS.get(name, name)


def threshold_color(panel: dict[str, Any], value: float | None) -> str:
    """The color of a value by the panel's thresholds (Grafana's defaults when it sets none),
    or its fixed color."""
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    color = defaults.get("color", {})
    if color.get("mode") == "fixed":
        return _color(str(color.get("fixedColor", "green")))
    steps: list[dict[str, Any]] = defaults.get("thresholds", {}).get("steps") or DEFAULT_THRESHOLDS
    chosen = steps[0]["color"]
    for s in steps[1:]:
        if value is not None and s["value"] is not None and value >= s["value"]:
            chosen = s["color"]
    return _color(str(chosen))


# Drawing.


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(v))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if v <= m * power:
            return m * power
    return 10.0 * power


def _svg_timeseries(
    drawn: Drawn, unit: str | None, w: int, h: int, span: tuple[float, float]
) -> str:
    left, bottom, top, right = 64, 22, 6, 8
    pw, ph = w - left - right, h - top - bottom
    start, end = span
    values = [v for s in drawn.series for _, v in s.points if math.isfinite(v)]
    ymax = _nice_max(max(values, default=0.0))
    out = [f'<svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">']
    for i in range(5):
        y = top + ph - ph * i / 4
        label = html.escape(formatted(ymax * i / 4, unit))
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{label}</text>'
        )
    ticks = max(2, min(6, pw // 80))
    for i in range(ticks + 1):
        at = start + (end - start) * i / ticks
        x = left + pw * i / ticks
        label = time.strftime("%H:%M:%S", time.gmtime(at))
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" class="grid"/>')
        out.append(
            f'<text x="{x:.1f}" y="{h - 6}" class="tick" text-anchor="middle">{label}</text>'
        )
    for n, s in enumerate(drawn.series):
        color = PALETTE[n % len(PALETTE)]
        pts = [
            f"{left + pw * (t - start) / (end - start):.1f},{top + ph - ph * v / ymax:.1f}"
            for t, v in s.points
            if math.isfinite(v)
        ]
        if len(pts) == 1:
            cx, cy = pts[0].split(",")
            out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{color}"/>')
        elif pts:
            out.append(
                f'<polyline points="{" ".join(pts)}" fill="none" stroke="{color}" '
                'stroke-width="1.5"/>'
            )
    out.append("</svg>")
    return "".join(out)


def _legend_table(drawn: Drawn, unit: str | None) -> str:
    rows = []
    for n, s in enumerate(drawn.series):
        color = PALETTE[n % len(PALETTE)]
        rows.append(
            f'<tr><td><i style="background:{color}"></i>{html.escape(s.legend)}</td>'
            f'<td class="num">{html.escape(formatted(s.last(), unit))}</td></tr>'
        )
    return f'<table class="legend"><tr><th></th><th>Last *</th></tr>{"".join(rows)}</table>'


def _panel_body(
    panel: dict[str, Any], drawn: Drawn, w: int, h: int, span: tuple[float, float]
) -> str:
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    if not drawn.series:
        return '<div class="nodata">No data</div>'
    if drawn.type == "stat":
        value = drawn.series[0].last()
        color = threshold_color(panel, value)
        return (
            f'<div class="stat" style="color:{color}">{html.escape(formatted(value, unit))}</div>'
        )
    if drawn.type == "bargauge":
        top = max((s.last() or 0.0) for s in drawn.series) or 1.0
        palette = panel.get("fieldConfig", {}).get("defaults", {}).get("color", {})
        bars = []
        for n, s in enumerate(drawn.series):
            value = s.last() or 0.0
            if palette.get("mode") == "palette-classic":
                color = PALETTE[n % len(PALETTE)]
            else:
                color = threshold_color(panel, value)
            bars.append(
                f'<div class="bar"><span class="name">{html.escape(s.legend)}</span>'
                f'<span class="track"><span class="fill" style="width:{100 * value / top:.1f}%;'
                f'background:{color}"></span></span>'
                f'<span class="num" style="color:{color}">'
                f"{html.escape(formatted(value, unit))}</span></div>"
            )
        return f'<div class="bars">{"".join(bars)}</div>'
    legend_w = min(300, w // 2)
    chart = _svg_timeseries(drawn, unit, w - legend_w - 8, h, span)
    return f'<div class="ts">{chart}{_legend_table(drawn, unit)}</div>'


_CSS = """
body{margin:0;background:#111217;color:#CCCCDC;font:13px/1.3 Inter,Helvetica,Arial,sans-serif}
header{padding:10px 16px;border-bottom:1px solid #2c2d33}
header h1{font-size:18px;margin:0 0 4px;font-weight:500}
header p{margin:0;color:#9fa1a8;font-size:12px}
.caption{margin:8px 16px;padding:8px 12px;border:1px solid #F2CC0C;border-radius:3px;
  color:#F2CC0C;background:#2a2510;font-size:13px}
.grid-area{position:relative;margin:8px 16px}
.panel{position:absolute;background:#181b1f;border:1px solid #2c2d33;border-radius:3px;
  overflow:hidden;box-sizing:border-box}
.panel h2{font-size:13px;font-weight:500;margin:0;padding:6px 8px;color:#ccccdc}
.row{position:absolute;font-size:15px;font-weight:500;padding-top:6px;color:#ccccdc}
.stat{font-size:34px;font-weight:500;text-align:center;padding-top:14px}
.nodata{color:#9fa1a8;text-align:center;padding-top:30px}
.bars{padding:4px 10px}
.bar{display:flex;align-items:center;margin:5px 0;gap:8px}
.bar .name{width:110px;text-align:right;color:#ccccdc}
.bar .track{flex:1;background:#22252b;height:20px;border-radius:2px}
.bar .fill{display:block;height:100%;border-radius:2px}
.bar .num{width:60px;font-size:16px}
.ts{display:flex;gap:8px;padding:0 6px}
.grid{stroke:#2c2d33;stroke-width:1}
.tick{fill:#9fa1a8;font-size:10px}
.legend{font-size:11px;border-collapse:collapse;align-self:flex-start;max-width:300px}
.legend th{color:#6e9fff;font-weight:500;text-align:right;padding:0 4px;white-space:nowrap}
.legend td{padding:1px 4px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;
  max-width:220px}
.legend i{display:inline-block;width:12px;height:3px;margin:0 6px 3px 0;vertical-align:middle}
.num{text-align:right}
"""


def render(
    dashboard: dict[str, Any],
    api: PrometheusApi,
    start: float,
    end: float,
    *,
    scrape_s: float,
    caption: str,
    width_px: int = 1600,
) -> tuple[str, list[Drawn]]:
    """The dashboard over [start, end] as one self-contained HTML page, and what each panel
    drew. Panels inside collapsed rows are drawn too, at their own positions."""
    flat: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        flat.append(panel)
        flat.extend(panel.get("panels", []))
    col = (width_px - 32) / COLUMNS
    cells: list[str] = []
    drawn_all: list[Drawn] = []
    bottom = 0
    for panel in flat:
        g = panel["gridPos"]
        x, y = g["x"] * col, g["y"] * (UNIT_PX + GAP_PX)
        w, h = g["w"] * col - GAP_PX, g["h"] * (UNIT_PX + GAP_PX) - GAP_PX
        bottom = max(bottom, int(y + h))
        style = f"left:{x:.0f}px;top:{y:.0f}px;width:{w:.0f}px;height:{h:.0f}px"
        title = html.escape(panel.get("title", ""))
        if panel["type"] == "row":
            cells.append(f'<div class="row" style="{style}">{title}</div>')
            continue
        drawn = evaluate(panel, api, start, end, scrape_s)
        drawn_all.append(drawn)
        body = _panel_body(panel, drawn, int(w) - 12, int(h) - 40, (start, end))
        cells.append(
            f'<div class="panel" data-title="{title}" data-series="{len(drawn.series)}" '
            f'style="{style}"><h2>{title}</h2>{body}</div>'
        )
    span = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start))
        + " to "
        + time.strftime("%H:%M:%S UTC", time.gmtime(end))
    )
    page = (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(dashboard['title'])}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(dashboard['title'])}</h1>"
        f"<p>uid {html.escape(dashboard['uid'])} · {span}</p></header>"
        f'<div class="caption">{html.escape(caption)}</div>'
        f'<div class="grid-area" style="height:{bottom + 8}px">{"".join(cells)}</div>'
        "</body></html>"
    )
    return page, drawn_all


def page_height(dashboard: dict[str, Any]) -> int:
    """The rendered page's height in pixels, for the screenshot's window size."""
    rows = max(int(p["gridPos"]["y"] + p["gridPos"]["h"]) for p in dashboard["panels"])
    return 150 + rows * (UNIT_PX + GAP_PX)
