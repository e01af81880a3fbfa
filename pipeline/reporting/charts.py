"""The trend report's charts: inline SVG, drawn here, so the HTML opens offline and needs no script.

Every text from the data is escaped; labels come from the report's language (``report_text``).
"""
from __future__ import annotations

import html
import math

import pandas as pd

from pipeline.reporting import recovery as recovery_figures
from pipeline.reporting.recovery import Recovery
from pipeline.reporting.language import Language
from pipeline.labels import NONE_LABEL
from pipeline.reporting.trends import OVERALL, Trends, period_label

# Okabe–Ito colours (distinguishable with colour-vision deficiencies); `none` is grey.
CAUSE_COLOURS = {"personnel": "#e69f00", "process": "#56b4e9", "technology": "#009e73", "management": "#0072b2",
                 "customer": "#cc79a7", "random": "#d55e00", NONE_LABEL: "#b0b0b0"}
EXTRA_COLOURS = ("#f0e442", "#000000", "#8c564b", "#7f7f7f", "#17becf")
ALERT_COLOUR = "#c0392b"
DECREASE_COLOUR = "#2e86c1"
HEATMAP_ROWS = 25
HEATMAP_MIN_RESIDUAL = 2.0  # |observed − expected| / √expected a heatmap cell needs to be coloured
SPEED_COLOURS = {"same_day": "#2e8b57", "next_day": "#e6b800", "later": ALERT_COLOUR, "open_late": "#7b241c",
                 "open": "#c8ced4"}
ANSWER_COLOUR, RESOLVE_COLOUR = "#8fb8de", "#1f4e79"


def cause_colour(cause: str, causes: list[str]) -> str:
    if cause in CAUSE_COLOURS:
        return CAUSE_COLOURS[cause]
    extra = [c for c in causes if c not in CAUSE_COLOURS]
    return EXTRA_COLOURS[extra.index(cause) % len(EXTRA_COLOURS)]


def overall_counts(result: Trends) -> pd.DataFrame:
    return result.counts[result.counts["scope"] == OVERALL]


def escape(value) -> str:
    return html.escape(str(value), quote=True)


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (f'<svg viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
            f'role="img" aria-label="{escape(label)}">' + "".join(body) + "</svg>")


def _tick_label(value: pd.Period, period: str) -> str:
    return f"{value.start_time:%Y-%m}" if period == "month" else f"{value.start_time:%m-%d}"


def _period_tick(x: float, y: float, value: pd.Period, period: str) -> str:
    return f'<text class="axis" x="{x:.1f}" y="{y}" text-anchor="middle">{escape(_tick_label(value, period))}</text>'


def _tick_every(count: int, wanted: int = 12) -> int:
    return max(1, math.ceil(count / wanted))


def stacked_shares_svg(result: Trends, text: Language) -> str:
    """100% bars: each period's service-failure complaints split by cause."""
    overall = overall_counts(result)
    periods = list(dict.fromkeys(overall["period"]))
    width, height, left, right, top, bottom = 960, 300, 48, 12, 12, 40
    plot_width, plot_height = width - left - right, height - top - bottom
    slot = plot_width / max(len(periods), 1)
    bar = max(slot * 0.82, 1.0)
    body = []
    for share in (0, 0.25, 0.5, 0.75, 1):
        y = top + plot_height * (1 - share)
        body.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                    f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{share:.0%}</text>')
    cells = overall.set_index(["period", "cause"])
    for i, value in enumerate(periods):
        x = left + i * slot + (slot - bar) / 2
        label = period_label(value, result.period)
        bottom_y = top + plot_height
        for cause in result.causes:
            count, total, share = cells.loc[(value, cause), ["count", "total", "share"]]
            if not total or not count:
                continue
            bar_height = share * plot_height
            bottom_y -= bar_height
            body.append(f'<rect x="{x:.1f}" y="{bottom_y:.1f}" width="{bar:.1f}" height="{bar_height:.1f}" '
                        f'fill="{cause_colour(cause, result.causes)}"><title>{escape(label)} · {escape(text.cause(cause))}: '
                        f'{count:,.0f} / {total:,.0f} ({share:.1%})</title></rect>')
        if i % _tick_every(len(periods)) == 0:
            body.append(_period_tick(x + bar / 2, height - bottom + 16, value, result.period))
    return _svg(width, height, body, text("h.shares"))


def cause_panel_svg(result: Trends, cause: str, text: Language) -> str:
    """One cause over time: its count, the count its baseline expected, and the flagged periods
    (filled: overall; ring: only within a split group)."""
    overall = overall_counts(result)
    series = overall[overall["cause"] == cause].set_index("period")["count"]
    periods = list(series.index)
    tests = result.tests[result.tests["cause"] == cause]
    overall_tests = tests[tests["scope"] == OVERALL].set_index("period")
    expected = overall_tests["expected"].reindex(periods)
    flagged_overall = set(overall_tests.index[overall_tests["flagged"].astype(bool)])
    flagged_split = set(tests.loc[(tests["scope"] != OVERALL) & tests["flagged"].astype(bool), "period"])
    width, height, left, right, top, bottom = 300, 150, 40, 10, 26, 24
    plot_width, plot_height = width - left - right, height - top - bottom
    # the axis spans the data (not from zero), so a rise shows; its two labels give the scale
    values = pd.concat([series, expected.dropna()])
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    low, high = max(0.0, low - 0.1 * (high - low)), high + max(0.05 * (high - low), 1.0)
    x_of = lambda i: left + (plot_width * i / max(len(periods) - 1, 1))  # noqa: E731
    y_of = lambda v: top + plot_height * (high - v) / (high - low)  # noqa: E731
    colour = cause_colour(cause, result.causes)
    body = [f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y_of(low):.1f}" y2="{y_of(low):.1f}"/>',
            f'<text class="axis" x="{left - 5}" y="{y_of(high) + 4:.1f}" text-anchor="end">{high:,.0f}</text>',
            f'<text class="axis" x="{left - 5}" y="{y_of(low) + 4:.1f}" text-anchor="end">{low:,.0f}</text>']
    known = [(x_of(i), y_of(v)) for i, v in enumerate(expected) if pd.notna(v)]
    if len(known) > 1:
        body.append('<polyline class="expected" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in known) + '"/>')
    body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                + " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in enumerate(series)) + '"/>')
    for i, value in enumerate(periods):
        label = f"{period_label(value, result.period)}: {series[value]:,.0f}"
        if pd.notna(expected.iloc[i]):
            label += " · " + text("panel.expected", value=f"{expected.iloc[i]:,.1f}")
        if value in flagged_overall:
            body.append(f'<circle cx="{x_of(i):.1f}" cy="{y_of(series[value]):.1f}" r="4.5" fill="{ALERT_COLOUR}">'
                        f'<title>{escape(label)} — {escape(text("col.alert"))}</title></circle>')
        elif value in flagged_split:
            body.append(f'<circle cx="{x_of(i):.1f}" cy="{y_of(series[value]):.1f}" r="4.5" fill="none" '
                        f'stroke="{ALERT_COLOUR}" stroke-width="2"><title>{escape(label)} — {escape(text("col.alert"))} · '
                        f'{escape(text.split(result.split_by))}</title></circle>')
        else:
            body.append(f'<circle cx="{x_of(i):.1f}" cy="{y_of(series[value]):.1f}" r="2" fill="{colour}">'
                        f'<title>{escape(label)}</title></circle>')
    if periods:
        body.append(f'<text class="axis" x="{left}" y="{height - 6}">{escape(_tick_label(periods[0], result.period))}</text>'
                    f'<text class="axis" x="{width - right}" y="{height - 6}" text-anchor="end">'
                    f'{escape(_tick_label(periods[-1], result.period))}</text>')
    latest = series.iloc[-1] if len(series) else 0
    body.append(f'<text class="panel-title" x="{left}" y="16">'
                f'{escape(text("panel.title", cause=text.cause(cause), count=f"{latest:,.0f}"))}'
                '</text>')
    return _svg(width, height, body, text.cause(cause))


def change_bars_svg(change: pd.DataFrame, text: Language) -> str:
    """Horizontal bars: each cause's change in share (points) against the previous period."""
    width, row, label_width, value_width = 720, 28, 170, 150
    height = row * len(change) + 10
    half = (width - label_width - value_width) / 2
    centre = label_width + half
    largest = max(float(change["share_change_points"].abs().max()) if change["share_change_points"].notna().any()
                  else 0, 0.5)
    body = [f'<line class="zero" x1="{centre:.1f}" x2="{centre:.1f}" y1="0" y2="{height}"/>']
    for i, item in enumerate(change.itertuples()):
        y = 5 + i * row
        body.append(f'<text class="label" x="{label_width - 8}" y="{y + 18}" text-anchor="end">'
                    f'{escape(text.cause(item.cause))}</text>')
        if pd.notna(item.share_change_points):
            length = half * abs(item.share_change_points) / largest
            x = centre if item.share_change_points >= 0 else centre - length
            fill = ALERT_COLOUR if item.share_change_points > 0 else DECREASE_COLOUR
            body.append(f'<rect x="{x:.1f}" y="{y + 5}" width="{max(length, 1):.1f}" height="{row - 10}" fill="{fill}">'
                        f'<title>{escape(text.cause(item.cause))}: '
                        f'{escape(text("points", value=signed(item.share_change_points, 1)))}</title></rect>')
        value = (f"{text('points', value=signed(item.share_change_points, 1))} ({number(item.previous_count)} → "
                 f"{number(item.count)})")
        body.append(f'<text class="value" x="{width - value_width + 6}" y="{y + 18}">{escape(value)}</text>')
    return _svg(width, height, body, text("col.change_points"))


def _diverging(lift: float) -> str:
    """Colour for how a group's share compares with everywhere: white when equal, red up to twice as
    large, blue down to half (log scale, clipped)."""
    position = max(-1.0, min(1.0, math.log2(lift))) if lift > 0 else -1.0
    white, end = (255, 255, 255), ((192, 57, 43) if position > 0 else (46, 134, 193))
    return "#" + "".join(f"{round(a + (b - a) * abs(position)):02x}" for a, b in zip(white, end))


def heatmap_svg(table: pd.DataFrame, column: str, causes: list[str], text: Language) -> str:
    """group × cause: number = complaints; colour = the cause's share of the group's complaints against
    its share across all groups (where a cause gathers, not merely where complaints are many), for the
    cells whose Pearson residual says the difference is beyond chance."""
    shown = table.head(HEATMAP_ROWS)
    cell_width, cell_height, label_width, header = 96, 26, 150, 30
    width = label_width + cell_width * (len(causes) + 1)
    height = header + cell_height * len(shown) + 4
    shares = shown.div(shown.sum(axis=1).where(lambda s: s > 0), axis=0).fillna(0)
    everywhere = table.sum(axis=0) / max(int(table.to_numpy().sum()), 1)
    body = []
    for j, cause in enumerate(causes):
        body.append(f'<text class="label" x="{label_width + cell_width * (j + 0.5):.1f}" y="{header - 10}" '
                    f'text-anchor="middle">{escape(text.cause(cause))}</text>')
    body.append(f'<text class="label" x="{label_width + cell_width * (len(causes) + 0.5):.1f}" y="{header - 10}" '
                f'text-anchor="middle">{escape(text("total"))}</text>')
    for i, (group, counts) in enumerate(shown.iterrows()):
        y = header + i * cell_height
        body.append(f'<text class="label" x="{label_width - 8}" y="{y + 17}" text-anchor="end">{escape(group)}</text>')
        for j, cause in enumerate(causes):
            share, overall_share = shares.loc[group, cause], everywhere[cause]
            expected = counts.sum() * overall_share
            # only differences beyond chance get a colour, so a handful of complaints cannot paint a cell
            beyond_chance = expected > 0 and abs(counts[cause] - expected) / math.sqrt(expected) >= HEATMAP_MIN_RESIDUAL
            lift = share / overall_share if beyond_chance else 1.0
            strong = lift <= 0 or abs(math.log2(lift)) > 0.6  # white text on the darker cells
            x = label_width + j * cell_width
            body.append(f'<rect class="cell-box" x="{x}" y="{y}" width="{cell_width - 2}" height="{cell_height - 2}" '
                        f'fill="{_diverging(lift)}"><title>{escape(text.split(column))} {escape(group)} · '
                        f'{escape(text.cause(cause))}: {counts[cause]:,} ({share:.1%}; {escape(text("overall"))} '
                        f'{overall_share:.1%})</title></rect>'
                        f'<text class="cell{" dark" if strong else ""}" '
                        f'x="{x + (cell_width - 2) / 2:.1f}" y="{y + 17}" text-anchor="middle">{counts[cause]:,}</text>')
        body.append(f'<text class="cell" x="{label_width + cell_width * (len(causes) + 0.5):.1f}" y="{y + 17}" '
                    f'text-anchor="middle">{int(counts.sum()):,}</text>')
    return _svg(width, height, body, text("where.title", split=text.split(column)))


def speed_bars_svg(recovery: Recovery, text: Language) -> str:
    """Per cause, a 100% bar of its tickets: recovered the same day, the next day, later, still open."""
    speed = recovery.speed
    width, row, label_width, value_width = 720, 26, 170, 90
    plot = width - label_width - value_width
    body = []
    for i, item in enumerate(speed.itertuples()):
        y = 4 + i * row
        total = sum(getattr(item, b) for b in recovery_figures.SPEED_BUCKETS)
        body.append(f'<text class="label" x="{label_width - 8}" y="{y + 16}" text-anchor="end">'
                    f'{escape(text.cause(item.cause))}</text>')
        x = float(label_width)
        for bucket in recovery_figures.SPEED_BUCKETS:
            count = getattr(item, bucket)
            if not count:
                continue
            length = plot * count / total
            body.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{length:.1f}" height="{row - 8}" '
                        f'fill="{SPEED_COLOURS[bucket]}"><title>{escape(text.cause(item.cause))} · '
                        f'{escape(text("speed." + bucket))}: {count:,} / {total:,}</title></rect>')
            x += length
        body.append(f'<text class="value" x="{width - value_width + 6}" y="{y + 16}">{total:,}</text>')
    return _svg(width, row * len(speed) + 8, body, text("h.speed"))


def recovery_times_svg(table: pd.DataFrame, name, text: Language) -> str:
    """Per group: hours to answer (light) and to resolve (dark), median dot and a line to the 90th percentile."""
    width, row, label_width, right = 720, 30, 170, 20
    plot = width - label_width - right
    longest = float(pd.concat([table["respond_p90_h"], table["resolve_p90_h"]]).max()) if len(table) else 1.0
    longest = longest if longest and not pd.isna(longest) and longest > 0 else 1.0
    x_of = lambda hours: label_width + plot * min(hours, longest) / longest  # noqa: E731
    body = [f'<text class="axis" x="{label_width}" y="{row * len(table) + 18}">0</text>',
            f'<text class="axis" x="{width - right}" y="{row * len(table) + 18}" text-anchor="end">'
            f'{escape(text.duration(longest))}</text>']
    for i, item in enumerate(table.itertuples()):
        y = 6 + i * row
        body.append(f'<text class="label" x="{label_width - 8}" y="{y + 14}" text-anchor="end">{escape(name(item.group))}</text>')
        for offset, median, p90, colour, what in (
                (4, item.respond_median_h, item.respond_p90_h, ANSWER_COLOUR, text("times.answer")),
                (14, item.resolve_median_h, item.resolve_p90_h, RESOLVE_COLOUR, text("times.resolve"))):
            if pd.isna(median):
                continue
            body.append(f'<line x1="{x_of(median):.1f}" x2="{x_of(p90):.1f}" y1="{y + offset}" y2="{y + offset}" '
                        f'stroke="{colour}" stroke-width="3"/>'
                        f'<circle cx="{x_of(median):.1f}" cy="{y + offset}" r="4" fill="{colour}"><title>'
                        f'{escape(name(item.group))} · {escape(what)}: {escape(text.duration(median))} / '
                        f'{escape(text.duration(p90))}</title></circle>')
    return _svg(width, row * len(table) + 24, body, text("h.times"))




def backlog_bars_svg(backlog: pd.DataFrame, period: str, text: Language) -> str:
    """Per period: texts still waiting for review (dark) and texts that are not complaints (light)."""
    width, height, left, right, top, bottom = 960, 150, 48, 12, 10, 30
    plot_width, plot_height = width - left - right, height - top - bottom
    slot = plot_width / max(len(backlog), 1)
    bar = max(slot * 0.7, 1.0)
    highest = max(int(backlog[["not_complaints", "awaiting_review"]].to_numpy().max()) if len(backlog) else 0, 1)
    body = [f'<text class="axis" x="{left - 6}" y="{top + 8}" text-anchor="end">{highest:,}</text>',
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{top + plot_height}" y2="{top + plot_height}"/>']
    for i, item in enumerate(backlog.itertuples()):
        x = left + i * slot + (slot - bar) / 2
        label = period_label(item.period, period)
        for count, colour, offset, name in ((item.not_complaints, CAUSE_COLOURS[NONE_LABEL], 0, "col.not_complaints"),
                                            (item.awaiting_review, "#5b6875", bar / 2, "col.awaiting")):
            h = plot_height * count / highest
            body.append(f'<rect x="{x + offset:.1f}" y="{top + plot_height - h:.1f}" width="{bar / 2:.1f}" '
                        f'height="{h:.1f}" fill="{colour}"><title>{escape(label)} · {escape(text(name))}: '
                        f'{count:,}</title></rect>')
        if i % _tick_every(len(backlog)) == 0:
            body.append(_period_tick(x + bar / 2, height - 10, item.period, period))
    return _svg(width, height, body, text("h.backlog"))


def signed(value, digits: int = 0) -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{0.0:.{digits}f}" if round(value, digits) == 0 else f"{value:+.{digits}f}"


def number(value, digits: int = 0) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:,.{digits}f}"
