"""The one ``Retry-After`` reader: delay-seconds and HTTP-dates (RFC 9110), cut to the caller's maximum, None for
anything unreadable; and its callers, the sync transport and the Jira notifier. Dates are read against a
fixed ``now``, or lie so far in the past or future that the clock cannot matter."""

from __future__ import annotations

import pytest
import requests
from airflow_opsflow_testing.recording_http import RecordingHTTPServer
from hypothesis import given
from hypothesis import strategies as st

from airflow_opsflow.alerts.jira import RETRY_AFTER_MAX as JIRA_MAX
from airflow_opsflow.alerts.jira import _retry_after as jira_retry_after
from airflow_opsflow.core.retry_after import parse_retry_after
from airflow_opsflow.sync.destinations.base import TransientError
from airflow_opsflow.sync.destinations.transport import RETRY_AFTER_MAX, HttpTarget, HttpTransport

NOW = 1445412470.0  # Wed, 21 Oct 2015 07:27:50 GMT


@pytest.mark.parametrize(("value", "seconds"), [
    ("3", 3.0), (" 120 ", 120.0), ("0", 0.0), ("1.5", 1.5), ("007", 7.0),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 10.0),  # IMF-fixdate
    ("Wednesday, 21-Oct-15 07:28:00 GMT", 10.0),  # obsolete RFC 850 form
    ("Wed Oct 21 07:28:00 2015", 10.0),  # obsolete asctime form: no zone, read as GMT (not the machine's zone)
    ("Wed, 21 Oct 2015 07:28:00 -0000", 10.0),
    ("Wed, 21 Oct 2015 09:28:00 +0200", 10.0),
    ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # a date already past: go now
])
def test_delay_seconds_and_http_dates(value: str, seconds: float) -> None:
    assert parse_retry_after(value, maximum=3600, now=NOW) == seconds


def test_absurd_waits_are_cut_to_the_maximum() -> None:
    assert parse_retry_after("99999999999", maximum=60) == 60.0
    assert parse_retry_after("9" * 400, maximum=60) == 60.0  # float() says inf
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", maximum=60, now=NOW) == 60.0


@pytest.mark.parametrize("value", [
    None, "", "   ", "-5", "+5", "-0.5", "nan", "NaN", "inf", "Infinity", "1e3", "1_000", "0x10", "1.", ".5",
    "\u0663", "\uff13", "5 s", "soon", "Wed, 32 Oct 2015 07:28:00 GMT",  # Arabic-Indic and fullwidth 3
    "Wed, 21 Oct 99999 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 +9999", "Mi, 21 Okt 2015 07:28:00 GMT",
    "\x00", "é", "3\n4",
])
def test_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, maximum=60, now=NOW) is None


@given(st.text())
def test_never_raises_and_stays_in_bounds(value: str) -> None:
    seconds = parse_retry_after(value, maximum=60)
    assert seconds is None or 0.0 <= seconds <= 60.0


@pytest.fixture
def api(recording_http: RecordingHTTPServer) -> RecordingHTTPServer:
    recording_http.reset()
    recording_http.keyed("/v1/items")
    return recording_http


@pytest.mark.parametrize(("header", "expected"), [
    ("2", 2.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("Fri, 31 Dec 9999 23:59:59 GMT", RETRY_AFTER_MAX),
    ("99999999999", RETRY_AFTER_MAX), ("-3", None), ("soon", None),
])
def test_the_sync_transport_reads_both_forms(api: RecordingHTTPServer, header: str, expected: float | None) -> None:
    t = HttpTransport(HttpTarget(api.url + "/v1", {}), 1, what="items API")
    api.fail_next(1, status=429, headers={"Retry-After": header})
    with pytest.raises(TransientError) as limited:
        t.request("POST", "/items", [{"id": 1}])
    assert limited.value.rate_limited and limited.value.retry_after == expected
    t.close()


def jira_answer(headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = 429
    response.headers.update(headers)
    return response


def test_the_jira_notifier_reads_both_forms_and_backs_off_without_one() -> None:
    assert jira_retry_after(jira_answer({"Retry-After": "7"}), attempt=3) == 7.0
    # An HTTP-date used to be ignored (the exponential back-off instead): now it is honoured too.
    assert jira_retry_after(jira_answer({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}), attempt=3) == 0.0
    assert jira_retry_after(jira_answer({"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}), attempt=3) == JIRA_MAX
    assert jira_retry_after(jira_answer({}), attempt=3) == 8.0
    assert jira_retry_after(jira_answer({"Retry-After": "nan"}), attempt=2) == 4.0
    assert jira_retry_after(None, attempt=0) == 1.0
