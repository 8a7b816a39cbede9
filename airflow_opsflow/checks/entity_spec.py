"""Per-entity tracking of a row-level check: which payments, deliveries... violate it, since when, and
how much money rides on them (the engine is :mod:`airflow_opsflow.incidents.entities`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_opsflow.checks.values import Float, Int
from airflow_opsflow.core.durations import parse_duration
from airflow_opsflow.core.identifiers import check_identifier

MAX_TRACKED = 100_000


class EntitySpec(BaseModel):
    """Track a check's violating rows as entities across runs.

    Each run fetches the violating rows' keys (up to ``max_entities``) and compares them with the open
    entities of the previous runs: new, still open, resolved. The check's result and alerts then say
    "3 new stuck deliveries, 12 still open (oldest 51 h, SLA 48 h)"; an open incident alerts again
    (transition ``updated``) when new entities appear.

    :param key: the column(s) identifying an entity (payment id, delivery id). For a ``sql`` check,
        columns of the query's output.
    :param amount: a numeric column: the money at stake per entity (summed over the open ones).
    :param since: a timestamp column: when the entity's trouble started (e.g. ``shipped_at``); ages
        count from it. Without it, ages count from the first run that saw the entity violating.
    :param sla: how old an open entity may get; older ones are reported as past SLA.
    :param escalate_after: an open entity this old makes the check an error (default: ``sla``), so a
        ``severity: warn`` check escalates its incident when the first entity breaches its SLA.
    :param escalate_above: money at stake (sum of ``amount`` over the open entities) above which the
        check is an error.
    :param noun: what an entity is called in alerts (``stuck delivery``); default ``entity``.
    :param plural: its plural (default: ``noun`` + s, or -ies).
    :param max_entities: violating rows fetched per run (default 10,000). Beyond it, entities not
        fetched are neither new nor resolved this run, and the result says the list was cut.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: list[str] = Field(min_length=1)
    amount: str | None = None
    since: str | None = None
    sla: timedelta | None = None
    escalate_after: timedelta | None = None
    escalate_above: Float | None = Field(default=None, ge=0)
    noun: str = Field(default="entity", min_length=1, max_length=60)
    plural: str | None = Field(default=None, min_length=1, max_length=60)
    max_entities: Int = Field(default=10_000, ge=1, le=MAX_TRACKED)

    @field_validator("key", mode="before")
    @classmethod
    def _one_key(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("key")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        return [check_identifier(c, "entity key column") for c in v]

    @field_validator("amount", "since")
    @classmethod
    def _column(cls, v: str | None) -> str | None:
        return None if v is None else check_identifier(v, "entity column")

    @field_validator("sla", "escalate_after", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> timedelta | None:
        return None if v is None else parse_duration(v)

    @model_validator(mode="after")
    def _distinct(self) -> EntitySpec:
        named = [*self.key, *(c for c in (self.amount, self.since) if c)]
        if len({c.lower() for c in named}) != len(named):
            raise ValueError(f"entity columns must differ: {named}")
        if self.escalate_above is not None and self.amount is None:
            raise ValueError("escalate_above compares the money at stake: give the 'amount' column too")
        return self

    def columns(self) -> list[str]:
        """The columns fetched per violating row: keys, then amount and since when given."""
        return [*self.key, *(c for c in (self.amount, self.since) if c)]

    @property
    def escalation_age(self) -> timedelta | None:
        return self.escalate_after or self.sla

    @property
    def plural_noun(self) -> str:
        if self.plural:
            return self.plural
        n = self.noun
        if n.endswith("y") and len(n) > 1 and n[-2] not in "aeiou":
            return n[:-1] + "ies"
        return n + ("es" if n.endswith(("s", "x", "ch", "sh")) else "s")
