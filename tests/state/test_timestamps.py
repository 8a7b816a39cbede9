"""The state store's timestamps: one UTC text shape, read back as aware UTC, naive meaning UTC everywhere."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from airflow_opsflow.core.timestamps import from_text, now_text, to_text
from airflow_opsflow.incidents.entities import Changes, Tracked
from airflow_opsflow.incidents.entity_repo import EntityRepo
from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo, Subject
from airflow_opsflow.monitors.detect import Point
from airflow_opsflow.monitors.metric import Series
from airflow_opsflow.monitors.repo import MetricRepo
from airflow_opsflow.state.store import StateStore

NOON = datetime(2024, 5, 1, 12, 0)  # naive: means 12:00 UTC
NOON_UTC = NOON.replace(tzinfo=UTC)


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host's zone is not UTC (as on a laptop): naive times must not be read in it."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    assert datetime(2024, 5, 1).astimezone().utcoffset() is not None
    assert datetime(2024, 5, 1).astimezone().utcoffset() != UTC.utcoffset(None)
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore(lambda: sqlite3.connect(tmp_path / "state.db"), "sqlite")
    yield store
    store.close()


def test_the_stored_text_keeps_the_shape_existing_rows_have() -> None:
    # datetime.isoformat() of a UTC time: the fraction only when there are microseconds, always +00:00.
    assert to_text(datetime(2024, 5, 1, 12, 34, 56, 789012, tzinfo=UTC)) == "2024-05-01T12:34:56.789012+00:00"
    assert to_text(datetime(2024, 5, 1, 12, 34, 56, tzinfo=UTC)) == "2024-05-01T12:34:56+00:00"
    assert to_text(datetime(2024, 5, 1, 14, tzinfo=ZoneInfo("Europe/Berlin"))) == "2024-05-01T12:00:00+00:00"
    assert to_text(None) is None
    assert len(to_text(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))) == 32  # the VARCHAR(32) columns
    assert now_text().endswith("+00:00")
    # bracketed by the two readings around it: whatever the hour or date the suite runs at
    before = datetime.now(UTC).replace(microsecond=0)
    written = from_text(now_text())
    assert written is not None and before <= written <= datetime.now(UTC)


@pytest.mark.parametrize("text", [
    "2024-05-01T12:00:00+00:00",         # every writer's shape
    "2024-05-01T12:00:00.000000+00:00",
    "2024-05-01T12:00:00",               # naive text: UTC
    "2024-05-01T12:00:00Z",
    "2024-05-01T14:00:00+02:00",
    "2024-05-01 12:00:00+00:00",
])
def test_every_form_reads_back_as_aware_utc(text: str) -> None:
    at = from_text(text)
    assert at == NOON_UTC
    assert at is not None and at.tzinfo is UTC


def test_nothing_reads_as_none() -> None:
    assert from_text(None) is None
    assert from_text("") is None


def test_naive_means_utc_whatever_the_host_zone(new_york: None) -> None:
    assert to_text(NOON) == "2024-05-01T12:00:00+00:00"
    assert from_text("2024-05-01T12:00:00") == NOON_UTC


def test_incidents_store_a_naive_time_as_utc(new_york: None, store: StateStore) -> None:
    # The incident repository used to read a naive time in the host's zone (16:00 UTC in New York).
    fp = fingerprint("payments", "check_payments", "amount_positive")
    repo = IncidentRepo(store)
    repo.record([(Subject(fp, "payments", "check_payments", "amount_positive"),
                  Observation(True, "error", "run1"))], Policy(), ["slack"], now=NOON)
    incident = repo.get(fp)
    assert incident is not None and incident.first_seen == NOON_UTC
    [delivery] = repo.pending([fp])
    assert delivery.created_at == NOON_UTC
    assert delivery.delivery_id.split(":", 2)[2].startswith("2024-05-01T12:00:00+00:00")


def test_entities_and_metric_points_store_a_naive_time_as_utc(new_york: None, store: StateStore) -> None:
    entities = EntityRepo(store)
    entities.apply("subject", Changes(upsert=[Tracked('["a"]', "open", NOON, "run1", since=NOON)]))
    tracked = entities.load("subject")['["a"]']
    assert (tracked.first_seen, tracked.since) == (NOON_UTC, NOON_UTC)

    metrics = MetricRepo(store)
    series = Series("history", ())
    metrics.save("history", [(series, Point(NOON, 1.0, None, False, False))])
    assert metrics.newest("history") == NOON_UTC
    [point] = metrics.load([series], datetime(2024, 5, 2), 10, "UTC")[series.series_id]
    assert point.at == NOON_UTC


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-05-01T12:00:00.000+0000", datetime(2024, 5, 1, 12, tzinfo=UTC)),  # Jira
    ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),  # HubSpot, Zendesk
    ("2024-05-01T14:00:00.000+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
    ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),  # naive: UTC
    (None, None), ("", None), ("not a time", None),
])
def test_vendor_timestamps_read_as_aware_utc(text: str | None, expected: datetime | None) -> None:
    from airflow_opsflow.core.timestamps import parse_time

    assert parse_time(text) == expected
