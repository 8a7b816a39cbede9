"""Alert routes: where an incident's transitions are sent. Subclasses deliver one alert each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_opsflow.incidents.lifecycle import SEVERITY_RANK

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_opsflow.incidents.alert import Alert
    from airflow_opsflow.incidents.repo import Delivery

TRANSITIONS = ("new", "escalated", "updated", "reminder", "resolved")


class AlertRoute:
    """Base of the alert routes.

    :param min_severity: the least severe incident this route hears about: ``warn`` (default) or ``error``.
    :param transitions: which transitions it is told about (default all: new, escalated, updated, reminder,
        resolved).
    :param sample_columns: sample columns shown (default: those the check selected).
    :param mask_columns: sample columns shown as ``•••`` (PII).
    :param sample_rows: sample rows shown.
    :param name: the route's id in the state store's outbox (default derived from its destination); keep
        it stable, since pending alerts are matched to routes by it.
    """

    kind = "route"
    # Attributes Airflow renders with Jinja when the route sits in a templated field of the task holding it
    # (``alerts``, ``ticket``): each route names its own (where it sends), none of the shared ones here.
    template_fields: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        min_severity: str = "warn",
        transitions: tuple[str, ...] = TRANSITIONS,
        sample_columns: list[str] | None = None,
        mask_columns: tuple[str, ...] = (),
        sample_rows: int = 5,
        name: str | None = None,
    ) -> None:
        if min_severity not in SEVERITY_RANK:
            raise ValueError(f"min_severity must be one of {sorted(SEVERITY_RANK)}, got {min_severity!r}")
        bad = [t for t in transitions if t not in TRANSITIONS]
        if bad:
            raise ValueError(f"unknown transitions {bad}; use {TRANSITIONS}")
        self.min_severity = min_severity
        self.transitions = tuple(transitions)
        self.sample_columns = sample_columns
        self.mask_columns = tuple(mask_columns)
        self.sample_rows = sample_rows
        self._name = name

    @property
    def name(self) -> str:
        return (self._name or f"{self.kind}:{self.where()}")[:100]

    def where(self) -> str:
        raise NotImplementedError

    def accepts(self, severity: str) -> bool:
        return SEVERITY_RANK.get(severity, 0) >= SEVERITY_RANK[self.min_severity]

    def prepare(self, deliveries: list[Delivery], refs: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Called once per dispatch with this route's pending deliveries, before any ``deliver``: a
        chance to batch look-ups (one search for all of a run's new tickets, one read of those to resolve).
        ``refs``: what this route remembered for each delivery's incident, by fingerprint, as the
        dispatch began. Default: nothing."""

    def deliver(self, alert: Alert, delivery: Delivery, refs: dict[str, Any]) -> dict[str, Any]:
        """Send ``alert``; return what to remember for the incident's later alerts on this route
        (e.g. the Slack message to thread under). ``refs`` is what this route remembered so far.
        Raise on failure: the delivery stays pending and is retried by the next try or run."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, min_severity={self.min_severity!r})"
