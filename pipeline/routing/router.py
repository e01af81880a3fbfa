"""Routing: a predicted cause → remedy strategy, owner queue, SLA and priority, all from config files.

The rules are data (``data/routing/routing.toml`` and ``remedies.toml``), validated when loaded: a
malformed file fails at start-up with the file, the key and the reason.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.config import ConfigError, Settings
from pipeline.labels import NONE_LABEL
from pipeline.tickets.sla import SlaClock, SlaRules


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queue: str = Field(min_length=1)
    sla_hours: float = Field(gt=0)
    priority: int = Field(ge=1, le=4)


class Override(BaseModel):
    """Applies when every ``match`` key equals the complaint's field or metadata value."""

    model_config = ConfigDict(extra="forbid")
    match: dict[str, str] = Field(min_length=1)
    cause: str | None = None  # limit the override to one cause
    queue: str | None = None
    sla_hours: float | None = Field(default=None, gt=0)
    priority: int | None = Field(default=None, ge=1, le=4)

    @model_validator(mode="after")
    def _changes_something(self) -> "Override":
        if self.queue is None and self.sla_hours is None and self.priority is None:
            raise ValueError("sets none of queue, sla_hours, priority")
        return self


class Remedy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1)
    title_zh: str
    title_en: str
    owner_role: str
    immediate: list[str] = Field(min_length=1)
    preventive: list[str] = Field(min_length=1)


class RoutingRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    routes: dict[str, Route]
    review: Route
    fallback: Route
    overrides: list[Override] = []
    sla: SlaRules = SlaRules()  # the respond clock and business hours: pipeline/tickets/sla.py


class RoutingDecision(BaseModel):
    cause: str
    queue: str
    sla_hours: float
    priority: int
    remedy: Remedy


def _load_toml(path: Path) -> dict:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _validation_message(path: Path, exc: ValidationError) -> str:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return f"{path}: {problems}"


class Router:
    def __init__(self, rules: RoutingRules, remedies: dict[str, Remedy],
                 timezone: str = Settings.model_fields["timezone"].default):
        self.rules = rules
        self.remedies = remedies
        self.sla_clock = SlaClock(rules.sla, timezone)

    @classmethod
    def from_files(cls, routing_path: Path | str, remedies_path: Path | str,
                   timezone: str = Settings.model_fields["timezone"].default) -> "Router":
        routing_path, remedies_path = Path(routing_path), Path(remedies_path)
        try:
            rules = RoutingRules(**_load_toml(routing_path))
        except ValidationError as exc:
            raise ConfigError(_validation_message(routing_path, exc)) from exc
        try:
            remedies = {cause: Remedy(**spec) for cause, spec in _load_toml(remedies_path).items()}
        except ValidationError as exc:
            raise ConfigError(_validation_message(remedies_path, exc)) from exc
        except TypeError as exc:
            raise ConfigError(f"{remedies_path}: each cause must be a table of fields ({exc})") from exc
        codes: dict[str, str] = {}
        for cause, remedy in remedies.items():
            if remedy.code in codes:
                raise ConfigError(f"{remedies_path}: [{cause}].code: {remedy.code!r} is already the code of "
                                  f"[{codes[remedy.code]}]; codes must be unique")
            codes[remedy.code] = cause
        if NONE_LABEL not in remedies:
            raise ConfigError(f"{remedies_path}: [{NONE_LABEL}]: missing; it is the manual-review remedy")
        return cls(rules, remedies, timezone)

    @classmethod
    def from_settings(cls, settings) -> "Router":
        return cls.from_files(settings.routing_path, settings.remedies_path, settings.timezone)

    def route_many(self, causes: list[str], needs_review: list[bool], fields: list[dict]) -> list[RoutingDecision]:
        """``route_for_cause`` of each row, each distinct (cause, review, fields the overrides match on)
        decided once: a batch of thousands has a few dozen."""
        keys = sorted({key for override in self.rules.overrides for key in override.match})
        decided: dict[tuple, RoutingDecision] = {}
        routes = []
        for cause, review, row_fields in zip(causes, needs_review, fields):
            key = (cause, review, *(str(row_fields.get(k, "")) for k in keys))
            route = decided.get(key)
            if route is None:
                route = decided[key] = self.route_for_cause(cause, review, row_fields)
            routes.append(route)
        return routes

    def route_for_cause(self, cause: str, needs_review: bool = False, fields: dict | None = None) -> RoutingDecision:
        """Route one prediction. A label with no route (a custom model's own category) takes the fallback
        route and the review remedy, so every label a model can emit lands somewhere."""
        if needs_review or cause == NONE_LABEL:
            route = self.rules.review
        else:
            route = self.rules.routes.get(cause, self.rules.fallback)
        queue, sla_hours, priority = route.queue, route.sla_hours, route.priority
        fields = fields or {}
        for override in self.rules.overrides:
            if override.cause not in (None, cause):
                continue
            if all(str(fields.get(key, "")) == value for key, value in override.match.items()):
                queue = override.queue or queue
                sla_hours = override.sla_hours or sla_hours
                priority = override.priority or priority
        remedy = self.remedies.get(cause) or self.remedies[NONE_LABEL]
        return RoutingDecision(cause=cause, queue=queue, sla_hours=sla_hours, priority=priority, remedy=remedy)
