"""pytest fixtures for opsflow's fake Slack, SMTP, Jira, HubSpot, Salesforce, Zendesk and HTTP servers (the
``opsflow`` pytest11 plugin).

pytest loads this module in every session of an environment where the testing kit is installed, so it imports
nothing beyond pytest: the servers (and aiosmtpd) are imported inside the fixtures that start them.

* ``fake_slack`` / ``fake_smtp``: a started :class:`~airflow_opsflow_testing.slack_server.FakeSlack` /
  :class:`~airflow_opsflow_testing.smtp_server.FakeSmtp`, stopped after the test;
* ``slack_conn`` (``slack_api_default``, SlackHook's and SlackNotifier's default), ``slack_webhook_conn``
  (``slack_default``, a webhook into ``#alerts``) and ``smtp_conn`` (``smtp_default``): set the
  ``AIRFLOW_CONN_...`` variable for the test and return the connection id;
* ``fake_jira``: a started :class:`~airflow_opsflow_testing.jira_server.FakeJira`, Jira Cloud unless
  parametrized (``@pytest.mark.parametrize("fake_jira", ["cloud", "server"], indirect=True)``), and
  ``jira_conn`` (``opsflow_jira``, the ``opsflow_jira`` connection type, credentials for the fake's mode);
* ``fake_hubspot``: a started :class:`~airflow_opsflow_testing.hubspot_server.FakeHubSpot` (190 requests per
  10 s, 5 searches a second, no search lag; ``fake_hubspot.set_rate_limit(10, 1.0)`` for quick 429s;
  ``@pytest.mark.parametrize("fake_hubspot", [{"search_lag": 2.0}], indirect=True)`` passes constructor
  arguments), and ``hubspot_conn`` (``hubspot_default``, an ``opsflow_hubspot`` connection: host = the fake's
  URL, password = its private app token);
* ``fake_salesforce`` / ``salesforce_conn`` and ``fake_zendesk`` / ``zendesk_conn``: see
  :mod:`~airflow_opsflow_testing.fixtures_salesforce` and :mod:`~airflow_opsflow_testing.fixtures_zendesk`;
* ``recording_http``: a started :class:`~airflow_opsflow_testing.recording_http.RecordingHTTPServer`, and
  ``http_conn`` (``http_default``, HttpHook's default: an ``http`` connection to it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_opsflow_testing.hubspot_server import FakeHubSpot
    from airflow_opsflow_testing.jira_server import FakeJira
    from airflow_opsflow_testing.recording_http import RecordingHTTPServer
    from airflow_opsflow_testing.slack_server import FakeSlack
    from airflow_opsflow_testing.smtp_server import FakeSmtp

# slack_sdk routes every request through these when set, ignoring NO_PROXY: 127.0.0.1 would go to the proxy.
# (requests, under the jira library, honours NO_PROXY, but a proxy without it would catch 127.0.0.1 too.)
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


def _setenv(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    """A fake Slack workspace (Web API + incoming webhooks) on 127.0.0.1 for this test."""
    from airflow_opsflow_testing.slack_server import FakeSlack

    _no_proxy(monkeypatch)
    with FakeSlack() as server:
        yield server


@pytest.fixture
def fake_smtp() -> Iterator[FakeSmtp]:
    """A recording SMTP server on 127.0.0.1 for this test."""
    from airflow_opsflow_testing.smtp_server import FakeSmtp

    with FakeSmtp() as server:
        yield server


@pytest.fixture
def slack_conn(fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> str:
    """The ``slack`` connection id wired to ``fake_slack`` (``SlackHook(slack_conn_id=slack_conn)``)."""
    conn_id = "slack_api_default"
    _setenv(monkeypatch, fake_slack.slack_connection(conn_id))
    return conn_id


@pytest.fixture
def slack_webhook_conn(fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> str:
    """The ``slackwebhook`` connection id whose webhook posts into ``#alerts`` of ``fake_slack``."""
    conn_id = "slack_default"
    _setenv(monkeypatch, fake_slack.webhook_connection(conn_id, channel="#alerts"))
    return conn_id


@pytest.fixture
def smtp_conn(fake_smtp: FakeSmtp, monkeypatch: pytest.MonkeyPatch) -> str:
    """The ``smtp`` connection id wired to ``fake_smtp`` (plain SMTP, the hook's default retries)."""
    conn_id = "smtp_default"
    _setenv(monkeypatch, fake_smtp.smtp_connection(conn_id))
    return conn_id


@pytest.fixture
def fake_jira(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeJira]:
    """A fake Jira site on 127.0.0.1 for this test: Cloud, or ``request.param`` ("cloud"/"server") when parametrized."""
    from airflow_opsflow_testing.jira_server import FakeJira

    _no_proxy(monkeypatch)
    with FakeJira(mode=getattr(request, "param", "cloud")) as server:
        yield server


@pytest.fixture
def jira_conn(fake_jira: FakeJira, monkeypatch: pytest.MonkeyPatch) -> str:
    """The ``opsflow_jira_default`` connection id wired to ``fake_jira`` (Cloud: email + API token; Server: PAT)."""
    conn_id = "opsflow_jira_default"
    _setenv(monkeypatch, fake_jira.jira_connection(conn_id))
    return conn_id


@pytest.fixture
def fake_hubspot(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHubSpot]:
    """A fake HubSpot account (CRM objects, tickets, pipelines, associations, search) on 127.0.0.1 for this test;
    indirect parametrization passes a dict of ``FakeHubSpot`` keyword arguments."""
    from airflow_opsflow_testing.hubspot_server import FakeHubSpot

    _no_proxy(monkeypatch)  # requests-based clients would send 127.0.0.1 to a proxy lacking NO_PROXY
    with FakeHubSpot(**getattr(request, "param", {})) as server:
        yield server


@pytest.fixture
def hubspot_conn(fake_hubspot: FakeHubSpot, monkeypatch: pytest.MonkeyPatch) -> str:
    """The ``hubspot_default`` connection id (``opsflow_hubspot``) wired to ``fake_hubspot``."""
    conn_id = "hubspot_default"
    _setenv(monkeypatch, fake_hubspot.hubspot_connection(conn_id))
    return conn_id


@pytest.fixture
def recording_http(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingHTTPServer]:
    """A recording REST/webhook endpoint on 127.0.0.1 for this test."""
    from airflow_opsflow_testing.recording_http import RecordingHTTPServer

    _no_proxy(monkeypatch)
    with RecordingHTTPServer() as server:
        yield server


@pytest.fixture
def http_conn(recording_http: RecordingHTTPServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The ``http_default`` connection id (HttpHook's default) pointing at ``recording_http``, no credentials."""
    conn_id = "http_default"
    _setenv(monkeypatch, recording_http.http_connection(conn_id))
    return conn_id


# Each fake with fixtures of its own module; importing them here registers them with the plugin.
from airflow_opsflow_testing.fixtures_salesforce import *  # noqa: E402, F403
from airflow_opsflow_testing.fixtures_zendesk import *  # noqa: E402, F403
