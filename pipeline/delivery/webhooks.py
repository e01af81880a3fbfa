"""One webhook POST with its retries: exponential backoff with jitter, and a receiver's ``Retry-After`` honoured.

Several POSTs run at once (``pipeline/delivery/outbox.py`` keeps the pool and all bookkeeping); what one of
them learns about a receiver holds them all: a 429 or 503 with ``Retry-After`` makes every request to that
receiver wait the time asked (``ReceiverPace``), not only the one that was told. A receiver asking for
longer than ``webhook_max_wait_seconds`` is left for the next run instead of being asked sooner.
"""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

MAX_BACKOFF_SECONDS = 60.0
RETRYABLE_STATUS = {408, 425, 429}  # plus every 5xx
ASKS_TO_WAIT = {429, 503}  # the statuses whose Retry-After is honoured


@dataclass(frozen=True)
class PostOutcome:
    delivered: bool
    attempts: int
    error: str | None = None
    receiver_down: bool = False  # every attempt failed on the network or with a retryable status


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header in seconds from now: delta-seconds or an HTTP-date; None when absent or
    unreadable (then the backoff applies)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def backoff_seconds(attempt: int, first_delay: float) -> float:
    """Exponential, capped, with jitter: between half and all of ``first_delay × 2^(attempt-1)``, so that
    requests refused together do not all come back at the same instant."""
    ceiling = min(first_delay * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class ReceiverPace:
    """When a receiver may be asked again, shared by every request to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._not_before = 0.0  # time.monotonic()

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + seconds)

    def wait(self) -> None:
        while (delay := self._not_before - time.monotonic()) > 0:
            time.sleep(delay)


def post_with_retries(client: httpx.Client, url: str, body: bytes, headers: dict[str, str], *, max_attempts: int,
                      first_delay: float, max_wait_seconds: float, pace: ReceiverPace | None = None) -> PostOutcome:
    """POST until a 2xx answer; retry network errors, timeouts, 5xx, 408, 425 and 429 with backoff, or after
    the time a 429/503 asks for. Any other 4xx is not retried: the same request would be refused again."""
    pace = pace or ReceiverPace()
    error = None
    for attempt in range(1, max_attempts + 1):
        pace.wait()
        delay = backoff_seconds(attempt, first_delay)
        try:
            response = client.post(url, content=body, headers=headers)
        except httpx.TransportError as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            if response.is_success:
                return PostOutcome(True, attempt)
            error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
            if response.status_code < 500 and response.status_code not in RETRYABLE_STATUS:
                return PostOutcome(False, attempt, error)
            asked = retry_after_seconds(response.headers.get("Retry-After")) \
                if response.status_code in ASKS_TO_WAIT else None
            if asked is not None:
                if asked > max_wait_seconds:
                    return PostOutcome(False, attempt, f"{error}, Retry-After {asked:.0f} s (longer than "
                                       f"webhook_max_wait_seconds {max_wait_seconds:g}): left for the next run",
                                       receiver_down=True)
                pace.hold(asked)
                delay = 0.0  # the pace holds this request, and every other one to the receiver, as long as asked
        if attempt < max_attempts:
            time.sleep(delay)
    return PostOutcome(False, max_attempts, error, receiver_down=True)


def answers_in_flight(in_flight: dict[Future, object]) -> list[tuple[object, PostOutcome]]:
    """Delivery stops: requests not started are not sent; those already sent are waited for. Returns the
    (entry, outcome) of those the receiver took."""
    taken = []
    for future, entry in in_flight.items():
        if future.cancel():
            continue
        try:
            outcome = future.result()
        except Exception:  # noqa: BLE001 - the first failure is the one raised; this entry stays pending
            continue
        if outcome.delivered:
            taken.append((entry, outcome))
    return taken
