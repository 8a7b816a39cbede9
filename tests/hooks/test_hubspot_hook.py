"""HubSpotHook.objects against the fake HubSpot: pages, and 429/5xx waited out then given up."""

from __future__ import annotations

import pytest
from airflow_opsflow_testing.hubspot_server import FakeHubSpot

from airflow_opsflow.hooks.hubspot import HubSpotHook
from airflow_opsflow.sync.destinations.transport import TransientError


def test_waits_as_told_capped_then_backs_off(fake_hubspot: FakeHubSpot, hubspot_conn: str,
                                            sleeps: list[float]) -> None:
    fake_hubspot.fail_next(1, status=429, retry_after=100)  # Retry-After honoured up to 30 s
    fake_hubspot.fail_next(1, status=503, retry_after=None)  # no Retry-After: 2 ** attempt
    fake_hubspot.fail_next(1, status=502, retry_after=3)
    assert HubSpotHook(hubspot_conn).objects("contacts", ["email"]) == []
    assert sleeps == [30.0, 2.0, 3.0]
    assert [r.status for r in fake_hubspot.calls("list")] == [429, 503, 502, 200]


def test_gives_up_after_five_tries(fake_hubspot: FakeHubSpot, hubspot_conn: str, sleeps: list[float]) -> None:
    fake_hubspot.fail_next(5, status=503)
    with pytest.raises(TransientError, match="HTTP 503"):
        HubSpotHook(hubspot_conn).objects("contacts", ["email"])
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    assert [r.status for r in fake_hubspot.calls("list")] == [503] * 5
