"""One nightly run per database at a time.

Two overlapping runs (a scheduled one and a manual one) would race on the same new complaints and deliver
the same tickets twice. A run takes a lease row in the database before it starts and renews it after each
batch and during delivery. A lease is taken over when its holder is gone: a process on this host that no
longer exists (a killed run), or a lease not renewed for ``stale_after`` (a holder on another host that died).

Fencing: each taking of the lease gets a new generation number. A holder that lost its lease (it stalled
and was judged dead) finds out at its next renewal or delivery write, both of which require its own
run id and generation, and stops (LeaseLostError) instead of delivering what the new holder delivers.
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from pipeline.storage.store import insert_or_ignore, run_lock, utcnow

LOCK_NAME = "nightly"


class RunLockedError(RuntimeError):
    """Another run holds the database."""


class LeaseLostError(RuntimeError):
    """This run's lease was taken over by another run: it must stop writing and delivering."""


@dataclass(frozen=True)
class Lease:
    run_id: str
    generation: int
    abandoned: str | None = None  # the run id of a dead holder this lease replaced

    def still_held(self) -> sa.ColumnElement:
        """A condition for fenced writes: true only while this lease is the one in the database."""
        return sa.exists().where(run_lock.c.name == LOCK_NAME, run_lock.c.run_id == self.run_id,
                                 run_lock.c.generation == self.generation)


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


def acquire(engine: sa.Engine, run_id: str, *, stale_after: timedelta = timedelta(hours=2)) -> Lease:
    """Take the lease for ``run_id`` (``Lease.abandoned``: the run id of a dead holder it replaced, if any);
    raises RunLockedError naming the live holder otherwise."""
    host, pid, now = socket.gethostname(), os.getpid(), utcnow()
    with engine.begin() as conn:
        row = conn.execute(sa.select(run_lock).where(run_lock.c.name == LOCK_NAME)).first()
        values = dict(run_id=run_id, host=host, pid=pid, acquired_at=now, renewed_at=now)
        if row is None:
            inserted = conn.execute(insert_or_ignore(conn, run_lock).values(name=LOCK_NAME, generation=1, **values)
                                    .returning(run_lock.c.name)).first()
            if inserted is None:
                # another run inserted it between our read and our write
                raise RunLockedError("another run took the database at the same moment; try again later")
            return Lease(run_id, 1)
        if not holder_is_gone(row, now=now, stale_after=stale_after, host=host):
            raise RunLockedError(
                f"run {row.run_id} (pid {row.pid} on {row.host}) has been running since {row.acquired_at:%Y-%m-%d %H:%M} UTC "
                f"and holds this database; wait for it to finish. If it died on another host, its lease expires "
                f"{stale_after} after its last batch ({row.renewed_at:%Y-%m-%d %H:%M} UTC).")
        generation = (row.generation or 0) + 1
        taken = conn.execute(run_lock.update()
                             .where(run_lock.c.name == LOCK_NAME, run_lock.c.run_id == row.run_id,
                                    _same_generation(row.generation))
                             .values(generation=generation, **values))
        if taken.rowcount != 1:
            raise RunLockedError("another run took over the stale lease at the same moment; try again later")
        return Lease(run_id, generation, abandoned=row.run_id)


def _same_generation(generation: int | None):
    return run_lock.c.generation.is_(None) if generation is None else run_lock.c.generation == generation


def renew(engine: sa.Engine, lease: Lease) -> None:
    """Renew the lease; LeaseLostError when another run has taken it over meanwhile."""
    with engine.begin() as conn:
        renewed = conn.execute(run_lock.update()
                               .where(run_lock.c.name == LOCK_NAME, run_lock.c.run_id == lease.run_id,
                                      run_lock.c.generation == lease.generation)
                               .values(renewed_at=utcnow()))
    if renewed.rowcount != 1:
        raise LeaseLostError(f"run {lease.run_id} lost its lease to another run; it stops here "
                             "(the other run delivers what is still pending)")


class LeaseKeeper:
    """Renews a lease while a long step (delivery) works: at most every ``renew_every`` seconds."""

    def __init__(self, engine: sa.Engine, lease: Lease, renew_every: float = 30.0):
        self.engine, self.lease, self.renew_every = engine, lease, renew_every
        self._renewed = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._renewed >= self.renew_every

    def renew(self) -> None:
        renew(self.engine, self.lease)
        self._renewed = time.monotonic()

    def renew_if_due(self) -> None:
        if self.due():
            self.renew()


def release(engine: sa.Engine, lease: Lease) -> None:
    with engine.begin() as conn:
        conn.execute(run_lock.delete().where(run_lock.c.name == LOCK_NAME, run_lock.c.run_id == lease.run_id,
                                             run_lock.c.generation == lease.generation))


@contextmanager
def held(engine: sa.Engine, run_id: str) -> Iterator[Lease]:
    """Hold the lease for the body (``Lease.abandoned``: the run id of a dead holder it replaced, if any)."""
    lease = acquire(engine, run_id)
    try:
        yield lease
    finally:
        release(engine, lease)
