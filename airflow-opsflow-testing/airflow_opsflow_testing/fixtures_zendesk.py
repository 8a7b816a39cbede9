"""pytest fixtures of the fake Zendesk (loaded by :mod:`airflow_opsflow_testing.pytest_plugin`).

* ``fake_zendesk``: a started :class:`~airflow_opsflow_testing.zendesk_server.FakeZendesk` (700 requests a
  minute; ``fake_zendesk.set_rate_limit(5, 1.0)`` for quick 429s), stopped after the test; its
  ``client()`` is a zenpy client bound to it;
* ``zendesk_conn``: the ``zendesk_default`` connection id (ZendeskHook's default, email + API token with
  ``use_token``) wired to ``fake_zendesk``; it also sets ``ZENPY_FORCE_SCHEME=http`` for the test, which the
  hook's zenpy needs to speak plain http.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_opsflow_testing.zendesk_server import FakeZendesk

__all__ = ["fake_zendesk", "zendesk_conn"]

# requests would send 127.0.0.1 to a proxy whose NO_PROXY lacks it
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


@pytest.fixture
def fake_zendesk(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeZendesk]:
    """A fake Zendesk Support account on 127.0.0.1 for this test."""
    from airflow_opsflow_testing.zendesk_server import FakeZendesk

    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    with FakeZendesk() as server:
        yield server


@pytest.fixture
def zendesk_conn(fake_zendesk: FakeZendesk, monkeypatch: pytest.MonkeyPatch) -> str:
    """The ``zendesk_default`` connection id wired to ``fake_zendesk`` (``ZendeskHook(zendesk_conn_id=...)``)."""
    conn_id = "zendesk_default"
    for name, value in fake_zendesk.zendesk_connection(conn_id).items():
        monkeypatch.setenv(name, value)
    return conn_id
