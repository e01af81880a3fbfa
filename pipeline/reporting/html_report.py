"""The report as one self-contained HTML page: the Jinja2 templates in ``templates/`` (autoescaped, strict
about undefined names) filled with plain values prepared here — strings, rows of strings, and the charts,
which are safe markup already (``charts``). Nothing here writes HTML or escapes by hand.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jinja2 import Environment, PackageLoader, StrictUndefined
from jinja2.ext import Extension

from pipeline.labels import NONE_LABEL
from pipeline.reporting.charts import (ALERT_COLOUR, BACKLOG_COLOUR, CAUSE_COLOURS, HEATMAP_MIN_RESIDUAL, HEATMAP_ROWS,
                                       SPEED_COLOURS, backlog_bars_svg, cause_colour, cause_panel_svg,
                                       change_bars_svg, heatmap_svg, recovery_times_svg, speed_bars_svg,
                                       stacked_shares_svg)
from pipeline.reporting.formatting import number, percent, signed
from pipeline.reporting.language import Language
from pipeline.reporting.recovery import SPEED_BUCKETS, Recovery
from pipeline.reporting.tables import (SHOWN_ALERTS, STATISTICS_HEADER, alert_quotes, alert_sentence, change_table,
                                       elapsed_note, examples_table, key_figures, meta_line, method_lines,
                                       recovery_header, recovery_rows, shares_note, shares_table, statistics_row,
                                       title, unfamiliar_text, where_text)

if TYPE_CHECKING:
    from pipeline.reporting.report import TrendReport


class TemplateLines(Extension):
    """Line breaks and indentation in the HTML templates are for people reading them: the page is written
    without them, so no stray space appears between two elements. This rewrites the template source before
    it is compiled; values put into the page are never touched."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return re.sub(r"\n[ \t]*", "", source) if name and name.endswith(".html.j2") else source


@functools.cache
def _environment() -> Environment:
    # keep_trailing_newline: the stylesheet ends in one, as it always has (the HTML templates' are removed)
    return Environment(loader=PackageLoader("pipeline.reporting", "templates"), autoescape=True,
                       undefined=StrictUndefined, keep_trailing_newline=True, extensions=[TemplateLines])


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    numeric: frozenset[int] = frozenset()  # columns of figures, aligned right


def render_html(report: TrendReport) -> str:
    result, text = report.trends, report.text
    page = {"text": text, "html_lang": "zh-CN" if text.code == "zh" else "en", "alert_colour": ALERT_COLOUR,
            "title": title(report), "meta": meta_line(report), "warning": unfamiliar_text(report),
            "empty": result.complaints == 0, "method_lines": method_lines(report)}
    if result.complaints:
        page |= {
            "key_figures": key_figures(report), "elapsed": elapsed_note(report), "split": text.split(result.split_by),
            "alerts": _alert_cards(report), "alerts_not_shown": max(len(result.alerts) - SHOWN_ALERTS, 0),
            "recovery": _recovery(report.recovery, text), "mix": _mix(report),
            "panels": [cause_panel_svg(result, cause, text) for cause in result.causes],
            "heatmap_min_residual": f"{HEATMAP_MIN_RESIDUAL:g}", "heatmap_rows": HEATMAP_ROWS,
            "heatmaps": [{"split": text.split(column), "chart": heatmap_svg(table, column, result.causes, text),
                          "groups": len(table)}
                         for column, table in sorted(result.heatmaps.items(), key=lambda item: item[0] != "channel")],
            "backlog": _backlog(report), "terms": _terms(report), "examples": _examples(report),
        }
    return _environment().get_template("report.html.j2").render(page)


def _alert_cards(report: TrendReport) -> list[dict]:
    result, text = report.trends, report.text
    return [{"colour": cause_colour(alert.cause, result.causes), "cause": text.cause(alert.cause),
             "where": where_text(alert.scope, alert.group, text), "sentence": alert_sentence(alert, result, text),
             "quotes": alert_quotes(report, position),
             "statistics": Table(STATISTICS_HEADER, [statistics_row(alert)], frozenset({0, 1, 2, 3}))}
            for position, alert in enumerate(result.alerts.head(SHOWN_ALERTS).itertuples())]


def _recovery(recovery: Recovery | None, text: Language) -> dict | None:
    if recovery is None or not recovery.tickets:
        return None
    figures = frozenset(range(1, 9))
    return {
        "has_updates": recovery.has_updates,
        "speed_legend": [(text("speed." + bucket), SPEED_COLOURS[bucket]) for bucket in SPEED_BUCKETS],
        "speed_chart": speed_bars_svg(recovery, text),
        "times_chart": recovery_times_svg(recovery.by["cause"], text.cause, text),
        "by_cause": Table(recovery_header(text, "col.cause"), recovery_rows(recovery.by["cause"], text.cause, text),
                          figures),
        "by_group": {key: Table(recovery_header(text, "col." + key), recovery_rows(recovery.by[key], str, text), figures)
                     for key in ("queue", "channel")},
        "compensation": _compensation(recovery, text), "corrections": _corrections(recovery, text),
    }


def _compensation(recovery: Recovery, text: Language) -> Table | None:
    compensation = recovery.compensation
    if not len(compensation):
        return None
    codes = [c for c in compensation.columns if c not in ("cause", "tickets_compensated", "total", "median")]
    rows = [[text.cause(r["cause"])] + [number(r[c]) for c in codes]
            + [number(r["tickets_compensated"]), number(r["total"]), number(r["median"])]
            for _, r in compensation.iterrows()]
    header = ([text("col.cause")] + [text.resolution(c) for c in codes]
              + [text("col.compensated"), text("col.total"), text("col.median")])
    return Table(header, rows, frozenset(range(1, len(codes) + 4)))


def _corrections(recovery: Recovery, text: Language) -> Table | None:
    """The causes the people handling the complaints found instead of the routed one."""
    if not len(recovery.corrections):
        return None
    return Table([text("col.routed"), text("col.found"), text("col.complaints"), text("col.share_routed")],
                 [[text.cause(r.routed_cause), text.cause(r.cause), f"{r.complaints:,}", percent(r.share_of_routed, 0)]
                  for r in recovery.corrections.itertuples()], frozenset({2, 3}))


def _mix(report: TrendReport) -> dict:
    result, text = report.trends, report.text
    change = change_table(result)
    adjusted = shares_table(report)
    return {
        "legend": [(text.cause(c), cause_colour(c, result.causes)) for c in result.causes],
        "shares_chart": stacked_shares_svg(result, text), "shares_note": shares_note(report),
        "adjusted": Table([text("col.cause"), text("col.raw_share"), text("col.adjusted_share"), text("col.interval")],
                          [[text.cause(r.cause), percent(r.raw_share), percent(r.adjusted_share),
                            f"{percent(r.ci_low)} – {percent(r.ci_high)}"] for r in adjusted.itertuples()],
                          frozenset({1, 2, 3})) if len(adjusted) else None,
        "change_chart": change_bars_svg(change, text),
        "change": Table([text("col.cause"), text("col.count"), text("col.previous"), text("col.change"),
                         text("col.share"), text("col.previous_share"), text("col.change_points"), text("col.alert")],
                        [[text.cause(c.cause), number(c.count), number(c.previous_count), signed(c.count_change),
                          percent(c.share), percent(c.previous_share), signed(c.share_change_points, 1),
                          text("yes") if c.alert else ""] for c in change.itertuples()],
                        frozenset(range(1, 7))),
    }


def _backlog(report: TrendReport) -> dict:
    result, text = report.trends, report.text
    backlog = result.backlog
    return {"legend": [(text("col.not_complaints"), CAUSE_COLOURS[NONE_LABEL]), (text("col.awaiting"), BACKLOG_COLOUR)],
            "chart": backlog_bars_svg(backlog, result.period, text),
            "line": text("backlog_line", awaiting=f"{int(backlog['awaiting_review'].sum()):,}",
                         not_complaints=f"{int(backlog['not_complaints'].sum()):,}")}


def _terms(report: TrendReport) -> Table | None:
    """The latest period's explanation terms per cause, most given first."""
    result, text = report.trends, report.text
    latest = result.terms[result.terms["period"] == result.current_period]
    rows = []
    for cause in result.causes:
        terms = latest[latest["cause"] == cause]
        if not terms.empty:
            rows.append([text.cause(cause), "、".join(f"{t.term} ({t.count}, {t.share:.0%})" for t in terms.itertuples())])
    return Table([text("col.cause"), text("col.terms")], rows) if rows else None


def _examples(report: TrendReport) -> list[tuple[str, list]]:
    """(cause name, its example complaints) for each cause that has any."""
    examples = examples_table(report)
    chosen = [(cause, examples[examples["cause"] == cause]) for cause in report.trends.causes]
    return [(report.text.cause(cause), list(rows.itertuples())) for cause, rows in chosen if not rows.empty]
