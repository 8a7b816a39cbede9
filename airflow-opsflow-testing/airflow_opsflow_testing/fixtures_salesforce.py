"""pytest fixtures of the fake Salesforce (loaded by :mod:`airflow_opsflow_testing.pytest_plugin`).

* ``fake_salesforce``: a started :class:`~airflow_opsflow_testing.salesforce_server.FakeSalesforce` (HTTPS with a
  throwaway CA), stopped after the test. ``REQUESTS_CA_BUNDLE`` is set to :attr:`~.FakeSalesforce.ca_bundle`
  (the usual CAs plus the fake's) so that any ``requests`` client, ``SalesforceHook`` included, trusts it;
  ``fake_salesforce.client()`` is a logged-in ``simple_salesforce.Salesforce``.
* ``salesforce_conn``: ``salesforce_default`` (``SalesforceHook``'s default), a ``salesforce`` connection with
  username, password, security token and the ``domain`` that routes the login to the fake.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_opsflow_testing.salesforce_server import FakeSalesforce

__all__ = ["fake_salesforce", "salesforce_conn"]

# requests would send 127.0.0.1 to a proxy that lacks NO_PROXY
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@pytest.fixture
def fake_salesforce(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSalesforce]:
    """A fake Salesforce org on https://127.0.0.1 for this test, trusted through ``REQUESTS_CA_BUNDLE``."""
    from airflow_opsflow_testing.salesforce_server import FakeSalesforce

    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    with FakeSalesforce() as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_bundle)
        yield server


@pytest.fixture
def salesforce_conn(fake_salesforce: FakeSalesforce, monkeypatch: pytest.MonkeyPatch) -> str:
    """The ``salesforce_default`` connection id wired to ``fake_salesforce`` (``SalesforceHook()``'s default)."""
    conn_id = "salesforce_default"
    for name, value in fake_salesforce.salesforce_connection(conn_id).items():
        monkeypatch.setenv(name, value)
    return conn_id
