"""The trend report's charts: inline SVG, drawn here, so the HTML opens offline and needs no script.

Each element is a ``Markup`` template filled with ``Markup.format``, which escapes every value put into it
(texts from the data included), so a chart is safe markup for the page's templates. Labels come from the
report's language (``language``).
"""
from __future__ import annotations

import math

import pandas as pd
from markupsafe import Markup

from pipeline.labels import NONE_LABEL
from pipeline.reporting import recovery as recovery_figures
from pipeline.reporting.formatting import number, signed
from pipeline.reporting.language import Language
from pipeline.reporting.recovery import Recovery
from pipeline.reporting.trends import OVERALL, Trends, overall_counts, period_label

# Okabe–Ito colours (distinguishable with colour-vision deficiencies); `none` is grey.
CAUSE_COLOURS = {"personnel": "#e69f00", "process": "#56b4e9", "technology": "#009e73", "management": "#0072b2",
                 "customer": "#cc79a7", "random": "#d55e00", NONE_LABEL: "#b0b0b0"}
EXTRA_COLOURS = ("#f0e442", "#000000", "#8c564b", "#7f7f7f", "#17becf")
ALERT_COLOUR = "#c0392b"
DECREASE_COLOUR = "#2e86c1"
BACKLOG_COLOUR = "#5b6875"  # texts awaiting review
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


def _svg(width: float, height: float, body: list[Markup], label: str) -> Markup:
    return Markup('<svg viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
                  'role="img" aria-label="{label}">{body}</svg>').format(
        width=width, height=height, label=label, body=Markup("").join(body))


def _tick_label(value: pd.Period, period: str) -> str:
    return f"{value.start_time:%Y-%m}" if period == "month" else f"{value.start_time:%m-%d}"


def _period_tick(x: float, y: float, value: pd.Period, period: str) -> Markup:
    return Markup('<text class="axis" x="{x:.1f}" y="{y}" text-anchor="middle">{label}</text>').format(
        x=x, y=y, label=_tick_label(value, period))


def _tick_every(count: int, wanted: int = 12) -> int:
    return max(1, math.ceil(count / wanted))


def stacked_shares_svg(result: Trends, text: Language) -> Markup:
    """100% bars: each period's service-failure complaints split by cause."""
    overall = overall_counts(result)
    periods = list(dict.fromkeys(overall["period"]))
    width, height, left, right, top, bottom = 960, 300, 48, 12, 12, 40
    plot_width, plot_height = width - left - right, height - top - bottom
    slot = plot_width / max(len(periods), 1)
    bar = max(slot * 0.82, 1.0)
    body = []
    for share in (0, 0.25, 0.5, 0.75, 1):
        body.append(Markup('<line class="grid" x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                           '<text class="axis" x="{label_x}" y="{label_y:.1f}" text-anchor="end">{share:.0%}</text>')
                    .format(left=left, right=width - right, y=top + plot_height * (1 - share), label_x=left - 6,
                            label_y=top + plot_height * (1 - share) + 4, share=share))
    cells = {(period, cause): (count, total, share) for period, cause, count, total, share
             in overall[["period", "cause", "count", "total", "share"]].itertuples(index=False)}
    for i, value in enumerate(periods):
        x = left + i * slot + (slot - bar) / 2
        label = period_label(value, result.period)
        bottom_y = top + plot_height
        for cause in result.causes:
            count, total, share = cells[(value, cause)]
            if not total or not count:
                continue
            bar_height = share * plot_height
            bottom_y -= bar_height
            body.append(Markup('<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" fill="{fill}">'
                               '<title>{label} · {cause}: {count:,.0f} / {total:,.0f} ({share:.1%})</title></rect>')
                        .format(x=x, y=bottom_y, bar=bar, height=bar_height, fill=cause_colour(cause, result.causes),
                                label=label, cause=text.cause(cause), count=count, total=total, share=share))
        if i % _tick_every(len(periods)) == 0:
            body.append(_period_tick(x + bar / 2, height - bottom + 16, value, result.period))
    return _svg(width, height, body, text("h.shares"))


def cause_panel_svg(result: Trends, cause: str, text: Language) -> Markup:
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

    def x_of(i: int) -> float:
        return left + (plot_width * i / max(len(periods) - 1, 1))

    def y_of(value: float) -> float:
        return top + plot_height * (high - value) / (high - low)

    colour = cause_colour(cause, result.causes)
    body = [Markup('<line class="grid" x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   '<text class="axis" x="{label_x}" y="{high_y:.1f}" text-anchor="end">{high:,.0f}</text>'
                   '<text class="axis" x="{label_x}" y="{low_y:.1f}" text-anchor="end">{low:,.0f}</text>').format(
        left=left, right=width - right, y=y_of(low), label_x=left - 5, high_y=y_of(high) + 4, high=high,
        low_y=y_of(low) + 4, low=low)]
    known = [(x_of(i), y_of(v)) for i, v in enumerate(expected) if pd.notna(v)]
    if len(known) > 1:
        body.append(Markup('<polyline class="expected" points="{points}"/>').format(
            points=" ".join(f"{x:.1f},{y:.1f}" for x, y in known)))
    body.append(Markup('<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>').format(
        colour=colour, points=" ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in enumerate(series))))
    for i, value in enumerate(periods):
        label = f"{period_label(value, result.period)}: {series[value]:,.0f}"
        if pd.notna(expected.iloc[i]):
            label += " · " + text("panel.expected", value=f"{expected.iloc[i]:,.1f}")
        point = {"x": x_of(i), "y": y_of(series[value]), "label": label, "alert": text("col.alert"),
                 "split": text.split(result.split_by), "fill": ALERT_COLOUR, "colour": colour}
        if value in flagged_overall:
            shape = ('<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{fill}">'
                     '<title>{label} — {alert}</title></circle>')
        elif value in flagged_split:
            shape = ('<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="none" stroke="{fill}" stroke-width="2">'
                     '<title>{label} — {alert} · {split}</title></circle>')
        else:
            shape = '<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{colour}"><title>{label}</title></circle>'
        body.append(Markup(shape).format(**point))
    if periods:
        body.append(Markup('<text class="axis" x="{left}" y="{y}">{first}</text>'
                           '<text class="axis" x="{right}" y="{y}" text-anchor="end">{last}</text>').format(
            left=left, right=width - right, y=height - 6, first=_tick_label(periods[0], result.period),
            last=_tick_label(periods[-1], result.period)))
    latest = series.iloc[-1] if len(series) else 0
    body.append(Markup('<text class="panel-title" x="{left}" y="16">{title}</text>').format(
        left=left, title=text("panel.title", cause=text.cause(cause), count=f"{latest:,.0f}")))
    return _svg(width, height, body, text.cause(cause))


def change_bars_svg(change: pd.DataFrame, text: Language) -> Markup:
    """Horizontal bars: each cause's change in share (points) against the previous period."""
    width, row, label_width, value_width = 720, 28, 170, 150
    height = row * len(change) + 10
    half = (width - label_width - value_width) / 2
    centre = label_width + half
    largest = max(float(change["share_change_points"].abs().max()) if change["share_change_points"].notna().any()
                  else 0, 0.5)
    body = [Markup('<line class="zero" x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}"/>').format(x=centre,
                                                                                                  height=height)]
    for i, item in enumerate(change.itertuples()):
        y = 5 + i * row
        body.append(Markup('<text class="label" x="{x}" y="{y}" text-anchor="end">{cause}</text>').format(
            x=label_width - 8, y=y + 18, cause=text.cause(item.cause)))
        points = text("points", value=signed(item.share_change_points, 1))
        if pd.notna(item.share_change_points):
            length = half * abs(item.share_change_points) / largest
            body.append(Markup('<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{height}" fill="{fill}">'
                               '<title>{cause}: {points}</title></rect>').format(
                x=centre if item.share_change_points >= 0 else centre - length, y=y + 5, width=max(length, 1),
                height=row - 10, fill=ALERT_COLOUR if item.share_change_points > 0 else DECREASE_COLOUR,
                cause=text.cause(item.cause), points=points))
        body.append(Markup('<text class="value" x="{x}" y="{y}">{points} ({previous} → {count})</text>').format(
            x=width - value_width + 6, y=y + 18, points=points, previous=number(item.previous_count),
            count=number(item.count)))
    return _svg(width, height, body, text("col.change_points"))


def _diverging(lift: float) -> str:
    """Colour for how a group's share compares with everywhere: white when equal, red up to twice as
    large, blue down to half (log scale, clipped)."""
    position = max(-1.0, min(1.0, math.log2(lift))) if lift > 0 else -1.0
    white, end = (255, 255, 255), ((192, 57, 43) if position > 0 else (46, 134, 193))
    return "#" + "".join(f"{round(a + (b - a) * abs(position)):02x}" for a, b in zip(white, end))


def heatmap_svg(table: pd.DataFrame, column: str, causes: list[str], text: Language) -> Markup:
    """group × cause: number = complaints; colour = the cause's share of the group's complaints against
    its share across all groups (where a cause gathers, not merely where complaints are many), for the
    cells whose Pearson residual says the difference is beyond chance."""
    shown = table.head(HEATMAP_ROWS)
    cell_width, cell_height, label_width, header = 96, 26, 150, 30
    width = label_width + cell_width * (len(causes) + 1)
    height = header + cell_height * len(shown) + 4
    shares = shown.div(shown.sum(axis=1).where(lambda s: s > 0), axis=0).fillna(0)
    everywhere = table.sum(axis=0) / max(int(table.to_numpy().sum()), 1)
    column_label = Markup('<text class="label" x="{x:.1f}" y="{y}" text-anchor="middle">{name}</text>')
    body = [column_label.format(x=label_width + cell_width * (j + 0.5), y=header - 10, name=text.cause(cause))
            for j, cause in enumerate(causes)]
    body.append(column_label.format(x=label_width + cell_width * (len(causes) + 0.5), y=header - 10,
                                    name=text("total")))
    for i, (group, counts) in enumerate(shown.iterrows()):
        y = header + i * cell_height
        body.append(Markup('<text class="label" x="{x}" y="{y}" text-anchor="end">{group}</text>').format(
            x=label_width - 8, y=y + 17, group=group))
        for j, cause in enumerate(causes):
            share, overall_share = shares.loc[group, cause], everywhere[cause]
            expected = counts.sum() * overall_share
            # only differences beyond chance get a colour, so a handful of complaints cannot paint a cell
            beyond_chance = expected > 0 and abs(counts[cause] - expected) / math.sqrt(expected) >= HEATMAP_MIN_RESIDUAL
            lift = share / overall_share if beyond_chance else 1.0
            strong = lift <= 0 or abs(math.log2(lift)) > 0.6  # white text on the darker cells
            x = label_width + j * cell_width
            body.append(Markup(
                '<rect class="cell-box" x="{x}" y="{y}" width="{width}" height="{height}" fill="{fill}">'
                '<title>{split} {group} · {cause}: {count:,} ({share:.1%}; {overall} {overall_share:.1%})</title>'
                '</rect><text class="{text_class}" x="{centre:.1f}" y="{text_y}" text-anchor="middle">{count:,}</text>'
            ).format(x=x, y=y, width=cell_width - 2, height=cell_height - 2, fill=_diverging(lift),
                     split=text.split(column), group=group, cause=text.cause(cause), count=counts[cause],
                     share=share, overall=text("overall"), overall_share=overall_share,
                     text_class="cell dark" if strong else "cell", centre=x + (cell_width - 2) / 2, text_y=y + 17))
        body.append(Markup('<text class="cell" x="{x:.1f}" y="{y}" text-anchor="middle">{total:,}</text>').format(
            x=label_width + cell_width * (len(causes) + 0.5), y=y + 17, total=int(counts.sum())))
    return _svg(width, height, body, text("where.title", split=text.split(column)))


def speed_bars_svg(recovery: Recovery, text: Language) -> Markup:
    """Per cause, a 100% bar of its tickets: recovered the same day, the next day, later, still open."""
    speed = recovery.speed
    width, row, label_width, value_width = 720, 26, 170, 90
    plot = width - label_width - value_width
    body = []
    for i, item in enumerate(speed.itertuples()):
        y = 4 + i * row
        total = sum(getattr(item, b) for b in recovery_figures.SPEED_BUCKETS)
        body.append(Markup('<text class="label" x="{x}" y="{y}" text-anchor="end">{cause}</text>').format(
            x=label_width - 8, y=y + 16, cause=text.cause(item.cause)))
        x = float(label_width)
        for bucket in recovery_figures.SPEED_BUCKETS:
            count = getattr(item, bucket)
            if not count:
                continue
            length = plot * count / total
            body.append(Markup('<rect x="{x:.1f}" y="{y}" width="{length:.1f}" height="{height}" fill="{fill}">'
                               '<title>{cause} · {bucket}: {count:,} / {total:,}</title></rect>').format(
                x=x, y=y + 3, length=length, height=row - 8, fill=SPEED_COLOURS[bucket],
                cause=text.cause(item.cause), bucket=text("speed." + bucket), count=count, total=total))
            x += length
        body.append(Markup('<text class="value" x="{x}" y="{y}">{total:,}</text>').format(
            x=width - value_width + 6, y=y + 16, total=total))
    return _svg(width, row * len(speed) + 8, body, text("h.speed"))


def recovery_times_svg(table: pd.DataFrame, name, text: Language) -> Markup:
    """Per group: hours to answer (light) and to resolve (dark), median dot and a line to the 90th percentile."""
    width, row, label_width, right = 720, 30, 170, 20
    plot = width - label_width - right
    longest = float(pd.concat([table["respond_p90_h"], table["resolve_p90_h"]]).max()) if len(table) else 1.0
    longest = longest if longest and not pd.isna(longest) and longest > 0 else 1.0

    def x_of(hours: float) -> float:
        return label_width + plot * min(hours, longest) / longest

    body = [Markup('<text class="axis" x="{left}" y="{y}">0</text>'
                   '<text class="axis" x="{right}" y="{y}" text-anchor="end">{longest}</text>').format(
        left=label_width, right=width - right, y=row * len(table) + 18, longest=text.duration(longest))]
    for i, item in enumerate(table.itertuples()):
        y = 6 + i * row
        body.append(Markup('<text class="label" x="{x}" y="{y}" text-anchor="end">{group}</text>').format(
            x=label_width - 8, y=y + 14, group=name(item.group)))
        for offset, median, p90, colour, what in (
                (4, item.respond_median_h, item.respond_p90_h, ANSWER_COLOUR, text("times.answer")),
                (14, item.resolve_median_h, item.resolve_p90_h, RESOLVE_COLOUR, text("times.resolve"))):
            if pd.isna(median):
                continue
            body.append(Markup('<line x1="{median_x:.1f}" x2="{p90_x:.1f}" y1="{y}" y2="{y}" stroke="{colour}" '
                               'stroke-width="3"/><circle cx="{median_x:.1f}" cy="{y}" r="4" fill="{colour}"><title>'
                               '{group} · {what}: {median} / {p90}</title></circle>').format(
                median_x=x_of(median), p90_x=x_of(p90), y=y + offset, colour=colour, group=name(item.group),
                what=what, median=text.duration(median), p90=text.duration(p90)))
    return _svg(width, row * len(table) + 24, body, text("h.times"))


def backlog_bars_svg(backlog: pd.DataFrame, period: str, text: Language) -> Markup:
    """Per period: texts still waiting for review (dark) and texts that are not complaints (light)."""
    width, height, left, right, top, bottom = 960, 150, 48, 12, 10, 30
    plot_width, plot_height = width - left - right, height - top - bottom
    slot = plot_width / max(len(backlog), 1)
    bar = max(slot * 0.7, 1.0)
    highest = max(int(backlog[["not_complaints", "awaiting_review"]].to_numpy().max()) if len(backlog) else 0, 1)
    body = [Markup('<text class="axis" x="{label_x}" y="{label_y}" text-anchor="end">{highest:,}</text>'
                   '<line class="grid" x1="{left}" x2="{right}" y1="{base}" y2="{base}"/>').format(
        label_x=left - 6, label_y=top + 8, highest=highest, left=left, right=width - right, base=top + plot_height)]
    for i, item in enumerate(backlog.itertuples()):
        x = left + i * slot + (slot - bar) / 2
        label = period_label(item.period, period)
        for count, colour, offset, name in ((item.not_complaints, CAUSE_COLOURS[NONE_LABEL], 0, "col.not_complaints"),
                                            (item.awaiting_review, BACKLOG_COLOUR, bar / 2, "col.awaiting")):
            bar_height = plot_height * count / highest
            body.append(Markup('<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" '
                               'fill="{fill}"><title>{label} · {what}: {count:,}</title></rect>').format(
                x=x + offset, y=top + plot_height - bar_height, width=bar / 2, height=bar_height, fill=colour,
                label=label, what=text(name), count=count))
        if i % _tick_every(len(backlog)) == 0:
            body.append(_period_tick(x + bar / 2, height - 10, item.period, period))
    return _svg(width, height, body, text("h.backlog"))
