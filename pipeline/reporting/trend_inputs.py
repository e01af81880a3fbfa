"""What the trend report is computed from, sized by what it shows rather than by the complaints stored.

``TrendInputs`` holds three small frames:

* ``cells``: the window's texts (each complaint once: its latest prediction, a reviewed label first)
  counted (``n``) per period, cause, channel, review state and familiarity — and, for the audit's
  correction, the model's own cause and version; the metadata text only when the report splits by a
  metadata column;
* ``explained``: the service failures' explanations counted per period and cause;
* ``candidates``: service failures of the latest period from which examples and alert quotes are picked —
  at least the first few of each cause and group in the order they are picked.

``read_trend_inputs`` has the database count them (one grouped query each, the period of each complaint
decided in SQL from the local period bounds, so any time zone works; the candidates by a ranking query):
the report reads a few thousand rows where it read one row per complaint of its window (issue 12).
``inputs_from_rows`` makes the same from the per-complaint rows of ``store.read_trend_rows`` (the trend
tests build their data that way); both give the same report.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from pipeline.clock import local_wall_times, to_utc
from pipeline.labels import NONE_LABEL
from pipeline.reporting.trends import (ALERT_EXAMPLES, MISSING_GROUP, PERIOD_FREQUENCIES, Window, in_window,
                                       periods_of, prepare_rows)
from pipeline.storage import store

CELL_KEYS = ["period", "cause", "channel", "needs_review", "reviewed", "unfamiliar", "model_cause", "model_version"]
CANDIDATE_COLUMNS = ["complaint_id", "cause", "at", "channel", "metadata_json", "confidence", "needs_review"]
EXPLAINED_READ_CHUNK = 50_000


@dataclass(frozen=True)
class TrendInputs:
    cells: pd.DataFrame  # CELL_KEYS (+ metadata_json), n
    explained: pd.DataFrame  # period, cause, explanation, n
    candidates: pd.DataFrame  # CANDIDATE_COLUMNS


def _channel_group(channel: pd.Series) -> pd.Series:
    """A missing channel is a group of its own, as in ``trends.prepare_rows``."""
    channel = channel.astype(object)
    return channel.where(channel.notna() & (channel != ""), MISSING_GROUP)


def _normalised(cells: pd.DataFrame) -> pd.DataFrame:
    """Causes and channels as the trend functions expect them."""
    return cells.assign(cause=cells["cause"].astype(object).astype("category"),
                        channel=_channel_group(cells["channel"]).astype("category"),
                        needs_review=cells["needs_review"].astype(bool), reviewed=cells["reviewed"].astype(bool),
                        unfamiliar=cells["unfamiliar"].fillna(False).astype(bool))


def inputs_from_rows(rows: pd.DataFrame, window: Window, period: str) -> TrendInputs:
    """The inputs counted from per-complaint rows (every failure of the latest period is a candidate)."""
    texts = in_window(prepare_rows(rows.assign(model_cause=rows["cause"].astype(object))), window)
    texts = texts.assign(period=texts["at"].dt.to_period(PERIOD_FREQUENCIES[period]),
                         unfamiliar=texts["unfamiliar"] if "unfamiliar" in texts.columns else False,
                         model_version=texts["model_version"].astype(object)
                         if "model_version" in texts.columns else None)
    cells = (texts.groupby(CELL_KEYS + ["metadata_json"], observed=True, dropna=False).size().rename("n")
             .reset_index())
    failures = texts[texts["cause"] != NONE_LABEL]
    explained = (failures[failures["explanation"] != ""].groupby(["period", "cause", "explanation"], observed=True)
                 .size().rename("n").reset_index())
    current = window.end.to_period(PERIOD_FREQUENCIES[period])
    candidates = failures.loc[failures["period"] == current, CANDIDATE_COLUMNS].reset_index(drop=True)
    return TrendInputs(_normalised(cells), explained, candidates)


def _period_index(at: sa.ColumnElement, bounds: list) -> sa.ColumnElement:
    """The position of each time among the periods starting at ``bounds[1:]`` (UTC): a balanced CASE, so a
    row costs log2(periods) comparisons."""
    def within(low: int, high: int) -> sa.ColumnElement:
        if low == high:
            return sa.literal(low, sa.Integer)
        middle = (low + high + 1) // 2
        return sa.case((at < sa.literal(bounds[middle], sa.DateTime), within(low, middle - 1)),
                       else_=within(middle, high))

    return within(0, len(bounds) - 1)


def read_trend_inputs(engine: sa.Engine, window: Window, period: str, timezone: str, *,
                      split_by: str, examples: int) -> TrendInputs:
    """The inputs of the window, counted by the database; ``examples``: candidates kept per cause and group."""
    predictions, complaints, reviews = store.predictions, store.complaints, store.reviews
    periods = periods_of(window, period)
    bounds = [to_utc(start, timezone) for start in periods.start_time.normalize()]
    bounds[0] = to_utc(window.start, timezone)  # the first period may start before the window
    end = to_utc(window.end + pd.Timedelta(days=1), timezone)
    at = store.complaint_time()
    newer = predictions.alias("newer")
    latest = ~sa.exists().where(newer.c.complaint_id == predictions.c.complaint_id, sa.or_(
        newer.c.predicted_at > predictions.c.predicted_at,
        sa.and_(newer.c.predicted_at == predictions.c.predicted_at,
                newer.c.model_version > predictions.c.model_version)))
    several = (sa.select(predictions.c.complaint_id).group_by(predictions.c.complaint_id)
               .having(sa.func.count() > 1).limit(1))
    newest_review = (sa.select(sa.func.max(reviews.c.review_id)).group_by(reviews.c.complaint_id).scalar_subquery())
    cause = sa.func.coalesce(reviews.c.cause, predictions.c.cause)
    joined = predictions.join(complaints).outerjoin(
        reviews, sa.and_(reviews.c.complaint_id == predictions.c.complaint_id, reviews.c.review_id.in_(newest_review)))
    with engine.connect() as conn:  # one model's predictions only: no complaint needs its latest picked
        repredicted = conn.execute(several).first() is not None
    in_window_ = sa.and_(at >= bounds[0], at < end, latest if repredicted else sa.true())
    period_index = _period_index(at, bounds)

    keys = [period_index.label("period"), cause.label("cause"), complaints.c.channel,
            predictions.c.needs_review, (reviews.c.cause.is_not(None)).label("reviewed"), predictions.c.unfamiliar,
            predictions.c.cause.label("model_cause"), predictions.c.model_version]
    if split_by != "channel":
        keys.append(complaints.c.metadata_json)
    counted = sa.select(*keys, sa.func.count().label("n")).select_from(joined).where(in_window_).group_by(*keys)
    failure = sa.and_(in_window_, cause != NONE_LABEL)
    explained = (sa.select(period_index.label("period"), cause.label("cause"), predictions.c.explanation,
                           sa.func.count().label("n"))
                 .select_from(joined).where(failure, predictions.c.explanation != "")
                 .group_by(period_index, cause, predictions.c.explanation))
    # three scans of the window, independent: the explanations (the longest) on a connection of their own
    # beside the other two — the database works on both cores (SQLite releases the GIL while it scans)
    with ThreadPoolExecutor(1, thread_name_prefix="report-read") as aside:
        explained_chunks = aside.submit(_read_chunks, engine, explained, EXPLAINED_READ_CHUNK)
        with engine.connect() as conn:
            cells = pd.read_sql(counted, conn)
            candidates = _read_candidates(conn, joined, sa.and_(failure, at >= bounds[-1]), cause, split_by,
                                          max(examples, ALERT_EXAMPLES))
        chunks = explained_chunks.result()
    if "metadata_json" not in cells.columns:
        cells["metadata_json"] = None
    explained_cells = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(
        columns=["period", "cause", "explanation", "n"])
    cells = _normalised(cells.assign(period=periods[cells["period"].astype(int)]))
    explained_cells = explained_cells.assign(
        period=periods[explained_cells["period"].astype(int)],
        cause=pd.Categorical(explained_cells["cause"], categories=cells["cause"].cat.categories))
    candidates["at"] = local_wall_times(pd.to_datetime(candidates["at"], format="ISO8601"), timezone)
    candidates["needs_review"] = candidates["needs_review"].astype(bool)
    return TrendInputs(cells, explained_cells, candidates)


def _read_chunks(engine: sa.Engine, statement, chunksize: int) -> list[pd.DataFrame]:
    with engine.connect() as conn:  # streamed: psycopg would otherwise fetch every row at once
        return list(pd.read_sql(statement, conn.execution_options(stream_results=True), chunksize=chunksize))


def _read_candidates(conn: sa.Connection, joined, where, cause, split_by: str, per_group: int) -> pd.DataFrame:
    """The first ``per_group`` failures of each cause and group (channel, or the metadata text when splitting
    by a metadata column) in the order examples are picked: confident, not awaiting review, newest first."""
    predictions, complaints = store.predictions, store.complaints
    at = store.complaint_time()
    group = complaints.c.channel if split_by == "channel" else complaints.c.metadata_json
    complaint_id = predictions.c.complaint_id
    if conn.dialect.name == "postgresql":  # ties broken by code point, as pandas sorts, not by the locale
        complaint_id = sa.collate(complaint_id, "C")
    rank = sa.func.row_number().over(partition_by=[cause, group], order_by=[
        predictions.c.needs_review, predictions.c.confidence.desc(), at.desc(), complaint_id])
    ranked = (sa.select(predictions.c.complaint_id, cause.label("cause"), sa.type_coerce(at, sa.String).label("at"),
                        complaints.c.channel, complaints.c.metadata_json, predictions.c.confidence,
                        predictions.c.needs_review, rank.label("rank"))
              .select_from(joined).where(where).subquery())
    statement = sa.select(*[ranked.c[name] for name in CANDIDATE_COLUMNS]).where(ranked.c.rank <= per_group)
    candidates = pd.read_sql(statement, conn)
    return candidates.assign(channel=_channel_group(candidates["channel"]))
