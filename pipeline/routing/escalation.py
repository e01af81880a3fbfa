"""Escalation: complaints that must be handled sooner than their queue's normal deadline.

The rules are data (``data/routing/escalation.toml``): words that signal a threat to go to a regulator,
a court or the media, words that signal a safety incident, and repeat complaints by the same customer
within N days. A rule that fires raises the ticket's priority, shortens its SLA and is named, with what
triggered it, in the ticket's escalation reasons. Everything here is pure; the stored history of a
batch's customers is fetched by the caller (``history_needed`` says what to fetch).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.config import ConfigError
from pipeline.text.normalise import normalise_text
from pipeline.routing.router import RoutingDecision, _load_toml, _validation_message

RULE_CODE = r"^[a-z][a-z0-9_]*$"

_NEGATION_REACH = 80  # characters before a word searched for its negation (cue + fillers + gap)
# customer_key → [(complaint time, complaint_id)]
CustomerHistory = dict[str, list[tuple[datetime, str]]]


def _no_blank_entries(values: list[str]) -> list[str]:
    if any(not value.strip() for value in values):
        raise ValueError("blank entries are not allowed")
    return values


Phrases = Annotated[list[str], AfterValidator(_no_blank_entries)]


class TermRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=RULE_CODE)
    reason: str = Field(min_length=1)
    priority: int = Field(ge=1, le=4)
    sla_hours: float = Field(gt=0)
    words: Phrases = Field(min_length=1)
    ignore: Phrases = []
    steps: list[str] = []


class RepeatRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=RULE_CODE)
    reason: str = Field(min_length=1, description="may use {window_days} and {count}")
    window_days: int = Field(ge=1)
    min_earlier: int = Field(default=1, ge=1)
    priority: int = Field(ge=1, le=4)
    sla_hours: float = Field(gt=0)
    steps: list[str] = []

    @field_validator("reason")
    @classmethod
    def _known_placeholders(cls, reason: str) -> str:
        try:
            reason.format(window_days=30, count=2)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"unknown placeholder {exc}; only {{window_days}} and {{count}} are filled in") from exc
        return reason


class NegationRules(BaseModel):
    """When a matched word is negated in its clause (没有异物, 无人受伤, 未发现床上有头发等异物) it does not fire."""

    model_config = ConfigDict(extra="forbid")
    cues: Phrases = Field(min_length=1, description="words that negate what follows: 没有, 未, 无 …")
    fillers: Phrases = Field(default=[], description="may stand between a cue and the word: 任何, 人, 出现 …")
    finding: Phrases = Field(default=[], description="verbs of finding (发现, 吃出 …): after a cue and one of "
                                                     "these, up to max_gap other characters may precede the word")
    max_gap: int = Field(default=12, ge=0, le=40)
    contrast: Phrases = Field(default=[], description="words that end a negation within a clause: 但, 却, 结果 …")


class BreachRule(BaseModel):
    """A ticket still unresolved after its resolve deadline (pipeline/tickets/sla.py)."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=RULE_CODE)
    reason: str = Field(min_length=1)
    raise_priority_by: int = Field(default=1, ge=0, le=3)
    notify_queue: str | None = Field(default=None, min_length=1, description="delivered again to this queue")
    max_days_late: float = Field(default=30, gt=0, description="a ticket later than this when first found "
                                                               "(loaded history) is listed, not escalated")
    steps: list[str] = []


class EscalationRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    terms: list[TermRule] = []
    repeat: RepeatRule | None = None
    negation: NegationRules | None = None
    breach: BreachRule | None = None

    @model_validator(mode="after")
    def _unique_codes(self) -> "EscalationRules":
        codes = [rule.code for rule in self.terms] + [rule.code for rule in (self.repeat, self.breach) if rule]
        repeated = sorted({code for code in codes if codes.count(code) > 1})
        if repeated:
            raise ValueError(f"rule codes must be unique; repeated: {repeated}")
        return self


@dataclass(frozen=True)
class Trigger:
    """One escalation rule that fired for one complaint."""

    code: str
    reason: str
    priority: int
    sla_hours: float
    steps: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()

    def describe(self) -> str:
        evidence = f" — {'、'.join(self.evidence)}" if self.evidence else ""
        return f"{self.code}: {self.reason}{evidence}"


def _alternation(phrases: list[str]) -> re.Pattern | None:
    """One pattern for all phrases, longest first; digit-only phrases only match as a whole number."""
    parts = []
    for phrase in sorted({normalise_text(p) for p in phrases}, key=len, reverse=True):
        escaped = re.escape(phrase)
        parts.append(rf"(?<!\d){escaped}(?!\d)" if phrase.isdigit() else escaped)
    return re.compile("|".join(parts)) if parts else None


# Clause ends after the model's clean-up (NFKC has made full-width ，！？；： half-width).
_CLAUSE_END = ",.!?;:。、…\n"


def _negated_before(rules: NegationRules) -> re.Pattern:
    """Matches a negation that ends where a word starts: cue, fillers, and optionally a verb of finding followed
    by a short gap within the clause that holds no contrast word and no second finding."""
    def alternation(phrases: list[str]) -> str:
        return "|".join(re.escape(p) for p in sorted({normalise_text(p) for p in phrases}, key=len, reverse=True))

    cue, filler, finding, contrast = (alternation(rules.cues), alternation(rules.fillers),
                                      alternation(rules.finding), alternation(rules.contrast))
    pattern = f"(?:{cue})" + (f"(?:{filler})*" if filler else "")
    if finding:
        stop = "|".join(part for part in (contrast, finding) if part)
        gap_char = f"(?:(?!{stop})[^{re.escape(_CLAUSE_END)}])"
        pattern += f"(?:(?:{finding}){gap_char}{{0,{rules.max_gap}}})?"
    return re.compile(pattern + "$")


def as_customer_key(value) -> str | None:
    """A frame cell as a customer key: pandas turns a missing one into NaN."""
    return value if isinstance(value, str) and value else None


def complaint_time(created_at, now: datetime) -> datetime:
    """When a complaint was made: its own date, or ``now`` when the source gave none."""
    return pd.Timestamp(created_at).to_pydatetime() if pd.notna(created_at) else now


def count_earlier(history: list[tuple[datetime, str]], *, at: datetime, complaint_id: str,
                  window: timedelta) -> int:
    """Complaints in ``history`` made before this one (ties broken by id) and at most ``window`` earlier."""
    return sum(1 for other_at, other_id in set(history)
               if other_id != complaint_id and at - window <= other_at and (other_at, other_id) < (at, complaint_id))


class Escalator:
    def __init__(self, rules: EscalationRules):
        self.rules = rules
        self._matchers = [(rule, _alternation(rule.words), _alternation(rule.ignore)) for rule in rules.terms]
        self._negated = _negated_before(rules.negation) if rules.negation else None

    @classmethod
    def from_file(cls, path: Path | str) -> "Escalator":
        path = Path(path)
        try:
            return cls(EscalationRules(**_load_toml(path)))
        except ValidationError as exc:
            raise ConfigError(_validation_message(path, exc)) from exc

    @classmethod
    def from_settings(cls, settings) -> "Escalator":
        return cls.from_file(settings.escalation_path)

    @property
    def repeat_window(self) -> timedelta | None:
        return timedelta(days=self.rules.repeat.window_days) if self.rules.repeat else None

    def text_triggers(self, text: str, masked: str | None = None) -> list[Trigger]:
        """``masked``: ``mask_pii(text)``, when the caller has it already."""
        return self.clean_text_triggers(normalise_text(text, masked))

    def clean_text_triggers(self, clean: str) -> list[Trigger]:
        """The term rules that fire on a text already through ``normalise_text`` (the model's clean-up)."""
        triggers = []
        for rule, words, ignore in self._matchers:
            searched = ignore.sub(" ", clean) if ignore else clean
            found = tuple(dict.fromkeys(match.group() for match in words.finditer(searched)
                                        if not self._is_negated(searched, match.start())))
            if found:
                triggers.append(Trigger(rule.code, rule.reason, rule.priority, rule.sla_hours,
                                        tuple(rule.steps), found))
        return triggers

    def _is_negated(self, text: str, start: int) -> bool:
        return bool(self._negated and self._negated.search(text, max(0, start - _NEGATION_REACH), start))

    def repeat_trigger(self, earlier: int) -> Trigger | None:
        rule = self.rules.repeat
        if rule is None or earlier < rule.min_earlier:
            return None
        return Trigger(rule.code, rule.reason.format(window_days=rule.window_days, count=earlier + 1),
                       rule.priority, rule.sla_hours, tuple(rule.steps))

    def history_needed(self, rows: pd.DataFrame, now: datetime) -> tuple[list[str], datetime | None]:
        """The customer keys of a batch and the earliest complaint time whose history matters."""
        if self.rules.repeat is None or "customer_key" not in rows or not len(rows):
            return [], None
        keys = sorted({as_customer_key(key) for key in rows["customer_key"]} - {None})
        if not keys:
            return [], None
        earliest = min(complaint_time(created_at, now) for created_at in rows["created_at"])
        return keys, earliest - self.repeat_window

    def triggers_for(self, *, text: str, complaint_id: str, customer_key: str | None, at: datetime,
                     history: CustomerHistory, masked: str | None = None,
                     text_triggers: list[Trigger] | None = None) -> list[Trigger]:
        """``text_triggers``: ``text_triggers(text)``, when the caller has them already (worker processes)."""
        triggers = list(self.text_triggers(text, masked) if text_triggers is None else text_triggers)
        if customer_key and self.rules.repeat:
            earlier = count_earlier(history.get(customer_key, []), at=at, complaint_id=complaint_id,
                                    window=self.repeat_window)
            repeat = self.repeat_trigger(earlier)
            if repeat:
                triggers.append(repeat)
        return triggers


def with_batch(stored: CustomerHistory, entries: list[tuple[str | None, datetime, str]]) -> CustomerHistory:
    """Stored history plus the batch's own complaints (customer_key, time, complaint_id)."""
    history = {key: list(items) for key, items in stored.items()}
    for key, at, complaint_id in entries:
        if as_customer_key(key):
            history.setdefault(key, []).append((at, complaint_id))
    return history


def escalate(decision: RoutingDecision, triggers: list[Trigger]) -> RoutingDecision:
    """The most urgent priority and the shortest SLA of the route and every rule that fired."""
    if not triggers:
        return decision
    return decision.model_copy(update={
        "priority": min(decision.priority, *(t.priority for t in triggers)),
        "sla_hours": min(decision.sla_hours, *(t.sla_hours for t in triggers)),
    })
