"""One nightly run per database at a time.

Two overlapping runs (a scheduled one and a manual one) would race on the same new complaints and deliver
the same tickets twice. A run takes a lease row in the database before it starts and renews it after each
batch. A lease is taken over when its holder is gone: a process on this host that no longer exists (a
killed run), or a lease not renewed for ``stale_after`` (a holder on another host that died).
"""
from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa

from pipeline.store import run_lock, utcnow

LOCK_NAME = "nightly"


class RunLockedError(RuntimeError):
    """Another run holds the database."""


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def holder_is_gone(row, *, now: datetime, stale_after: timedelta, host: str) -> bool:
    if row.host == host and not _process_exists(row.pid):
        return True
    return now - row.renewed_at > stale_after


def acquire(engine: sa.Engine, run_id: str, *, stale_after: timedelta = timedelta(hours=2)) -> str | None:
    """Take the lease for ``run_id``. Returns the run id of a dead holder it replaced, if any; raises
    RunLockedError naming the live holder otherwise."""
    host, pid, now = socket.gethostname(), os.getpid(), utcnow()
    with engine.begin() as conn:
        row = conn.execute(sa.select(run_lock).where(run_lock.c.name == LOCK_NAME)).first()
        values = dict(run_id=run_id, host=host, pid=pid, acquired_at=now, renewed_at=now)
        if row is None:
            try:
                conn.execute(run_lock.insert().values(name=LOCK_NAME, **values))
            except sa.exc.IntegrityError:  # another run inserted it between our read and write
                raise RunLockedError("another run took the database at the same moment; try again later") from None
            return None
        if not holder_is_gone(row, now=now, stale_after=stale_after, host=host):
            raise RunLockedError(
                f"run {row.run_id} (pid {row.pid} on {row.host}) has been running since {row.acquired_at:%Y-%m-%d %H:%M} UTC "
                f"and holds this database; wait for it to finish. If it died on another host, its lease expires "
                f"{stale_after} after its last batch ({row.renewed_at:%Y-%m-%d %H:%M} UTC).")
        taken = conn.execute(run_lock.update()
                             .where(run_lock.c.name == LOCK_NAME, run_lock.c.run_id == row.run_id)
                             .values(**values))
        if taken.rowcount != 1:
            raise RunLockedError("another run took over the stale lease at the same moment; try again later")
        return row.run_id


def renew(engine: sa.Engine, run_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(run_lock.update().where(run_lock.c.name == LOCK_NAME, run_lock.c.run_id == run_id)
                     .values(renewed_at=utcnow()))


def release(engine: sa.Engine, run_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(run_lock.delete().where(run_lock.c.name == LOCK_NAME, run_lock.c.run_id == run_id))


@contextmanager
def held(engine: sa.Engine, run_id: str) -> Iterator[str | None]:
    """Hold the lease for the body; yields the run id of a dead holder it replaced, if any."""
    abandoned = acquire(engine, run_id)
    try:
        yield abandoned
    finally:
        release(engine, run_id)
