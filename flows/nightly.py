"""The nightly run as a Prefect 3 flow: thin tasks over ``pipeline`` functions.

The batches go through the one batch path (``pipeline.nightly.batch.BatchRun``) inside one task: nothing
that grows with the run is handed to Prefect (it walks every task argument on every call), classification
of the next batch overlaps the storing of the previous one, and progress is logged every few seconds.
Tasks skip Prefect's input hashing (NO_CACHE); nothing is persisted by Prefect — the database and the
output files are the record. Retries only on I/O.
"""
import uuid
from contextlib import ExitStack
from datetime import datetime

from pydantic import SecretStr
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as current_flow_run

from pipeline.storage import runlock
from pipeline.storage import store
from pipeline.model.classify import load_model
from pipeline.clock import to_utc
from pipeline.config import ConfigError, Settings, has_password, hide_password, load_settings
from pipeline.delivery.outbox import deliver_pending, delivery_summary
from pipeline.routing.escalation import Escalator
from pipeline.ingest.intake import Intake
from pipeline.nightly.batch import BatchRun
from pipeline.nightly.progress import RunProgress, count_rows, log_every
from pipeline.reporting.report import artifact_table, build_report, render_markdown, write_report_files
from pipeline.routing.router import Router
from pipeline.nightly.summary import redact_run_logs, run_summary
from pipeline.tickets.sla import breach_markdown, escalate_breaches

redact_run_logs()


@task(cache_policy=NO_CACHE)
def classify_and_store(batches: BatchRun, intake: Intake) -> dict:
    """Every batch of the source through the batch path (its database lookup and write retry by themselves);
    progress logged every few seconds. The run's growing state (ids seen, counts) lives inside ``batches``, a
    plain object Prefect passes as it is instead of walking it."""
    settings = batches.settings
    batches.progress = RunProgress(total=count_rows(intake.source))
    batches.progress.listeners.append(log_every(get_run_logger()))
    counts = batches.run(intake.chunks())  # a folder: its new files; a table: its rows after the watermark
    get_run_logger().info("done: %s", batches.progress.describe())
    # nearly all quarantined: a mapping or an export to fix, said in one line
    batches.tally.check(counts.rows_read, settings, batches.quarantine_file)
    intake.record(batches.run_id)  # only now: a failed run leaves its files and rows to the next one
    return counts.as_dict()


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=10)
def deliver(engine, settings: Settings, keeper: runlock.LeaseKeeper) -> dict:
    """Every pending outbox entry, this run's and any left by earlier runs; failures stay pending. The lease
    is renewed as delivery goes on and fences every outbox write."""
    return delivery_summary(deliver_pending(engine, settings, keeper=keeper), settings)


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def sweep_deadlines(engine, router: Router, escalator: Escalator, settings: Settings, run_id: str) -> dict:
    """Escalate the tickets that passed their resolve deadline unresolved since the last run; count them."""
    sweep = escalate_breaches(engine, router.sla_clock, escalator.rules.breach, now=store.utcnow(), run_id=run_id,
                              webhooks=settings.webhooks)
    create_markdown_artifact(breach_markdown(sweep), key="ticket-deadlines",
                             description="tickets that breached their deadline since the last run")
    return sweep.summary()


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def publish_trends(engine, settings: Settings, run_id: str) -> str | None:
    """The trend report files (HTML, Excel, markdown) and the same summary as Prefect artifacts."""
    report = build_report(engine, settings)
    if report is None:
        return None
    paths = write_report_files(report, settings.reports_dir, f"trends-{run_id}")
    # the path as text: the Prefect UI is a browser, which will not open a file:// link from a web page
    create_markdown_artifact(render_markdown(report, report_path=paths["html"].resolve()), key="complaint-trends",
                             description="alerts, recovery, cause mix and review backlog")
    create_table_artifact(artifact_table(report), key="complaint-trends-table",
                          description="each cause in the latest period against the previous one")
    return str(paths["html"])


@flow(name="nightly-complaints", log_prints=True)
def nightly_flow(source: str | SecretStr, since: datetime | None = None, table: str | None = None,
                 query: str | None = None, config_path: str | None = None,
                 settings: Settings | None = None) -> dict:
    """Ingest → validate → normalise/segment/classify → route/escalate → store, batch by batch; then deliver
    and publish the trend report.

    A database URL with a password comes as a SecretStr (and ``settings.database_url`` is one): Prefect
    records the flow's parameters in its database and UI, and records a SecretStr as ``**********``."""
    logger = get_run_logger()
    if isinstance(source, SecretStr):
        source = source.get_secret_value()
    settings = settings or load_settings(config_path)
    since = to_utc(since, settings.timezone)  # a time without a zone is local; the database holds UTC
    engine = store.connect(settings.resolved_database_url)
    model = load_model(settings)
    router = Router.from_settings(settings)
    escalator = Escalator.from_settings(settings)
    run_id = f"{datetime.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    quarantine_file = settings.work_dir / "quarantine" / f"{run_id}.csv"
    with ExitStack() as cleanup:
        cleanup.callback(engine.dispose)
        lease = cleanup.enter_context(runlock.held(engine, run_id))  # RunLockedError while another run lives
        abandoned = lease.abandoned
        if abandoned:
            logger.warning("run %s died without finishing; its lease is taken over", abandoned)
            store.finish_run(engine, abandoned, {}, "failed", error=f"process died; lease taken over by {run_id}")
            mark_crashed(store.prefect_flow_run_of(engine, abandoned), f"process died; run {run_id} took over")
        store.start_run(engine, run_id, hide_password(source), model.version, since, current_flow_run.id)
        intake = Intake(engine, source, settings, table=table, query=query)
        # closed when the batches are done: the worker processes and the run's ids are not kept through the rest
        with BatchRun(settings, engine, model, run_id=run_id, since=since, router=router, escalator=escalator,
                      quarantine_file=quarantine_file,
                      after_batch=lambda _records: runlock.renew(engine, lease)) as batches:
            try:
                counts = classify_and_store(batches, intake)
            except Exception as exc:
                store.finish_run(engine, run_id, batches.counts.as_dict(), "failed", error=str(exc))
                raise
        store.finish_run(engine, run_id, counts, "completed")
        summary = run_summary(engine, run_id, settings, quarantine_file if counts["quarantined"] else None)
        summary["intake"] = intake.summary()
        if summary["familiarity_note"]:
            logger.warning(summary["familiarity_note"])
        summary["sla"] = sweep_deadlines(engine, router, escalator, settings, run_id)  # before delivering its escalations
        if summary["sla"]["breached_since_last_run"]:
            logger.warning("%d ticket(s) breached their resolve deadline since the last run (%d escalated)",
                           summary["sla"]["breached_since_last_run"], summary["sla"]["escalated"])
        # inside the lease: a second deliverer would send twice. The report reads no delivery state: it is
        # built meanwhile, the database's scans on one core while delivery's Python runs on the other
        delivery = deliver.submit(engine, settings, runlock.LeaseKeeper(engine, lease))
        try:
            summary["report"] = publish_trends(engine, settings, run_id)
        finally:
            delivery.wait()  # never leave the lease (and the engine) while delivery still writes
        summary.update(delivery.result())
        logger.info("run %s: %s", run_id, counts)
        return summary


def mark_crashed(flow_run_id: str | None, message: str) -> None:
    """A flow run whose process was killed stays Running in Prefect forever: say it crashed."""
    if not flow_run_id:
        return
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        try:
            client.set_flow_run_state(flow_run_id, Crashed(message=message), force=True)
        except Exception as exc:  # noqa: BLE001 - another Prefect server's run, or one already deleted
            get_run_logger().warning("could not mark Prefect flow run %s crashed: %s", flow_run_id, exc)


def serve_nightly(settings: Settings, source: str, table: str | None = None, query: str | None = None,
                  config_path: str | None = None) -> None:
    """Register the nightly cron schedule (local time zone from settings) and serve it until stopped; each run
    reads the settings file ``config_path`` (and the environment) afresh."""
    from prefect.schedules import Cron

    if has_password(source):  # a deployment's parameters are stored in Prefect's database as they are
        raise ConfigError(f"{hide_password(source)}: a scheduled source cannot carry its password; give it to the "
                          "database driver through its environment (PGPASSWORD for PostgreSQL) instead")
    nightly_flow.serve(
        name="nightly",
        schedules=[Cron(settings.nightly_cron, timezone=settings.timezone)],
        parameters={"source": source, "table": table, "query": query, "config_path": config_path},
    )
