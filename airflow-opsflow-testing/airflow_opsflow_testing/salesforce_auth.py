"""Logins of FakeSalesforce: the SOAP ``login()`` simple-salesforce does by default, and the OAuth 2.0 token endpoint.

* ``POST /services/Soap/u/{version}`` with a partner ``<login>`` envelope → ``loginResponse`` with ``sessionId``
  and ``serverUrl`` (whose host becomes the client's instance), or HTTP 500 with a ``sf:INVALID_LOGIN`` fault;
* ``POST /services/oauth2/token``: ``grant_type=password`` (client id/secret + username/password) and
  ``client_credentials`` (HTTP Basic or form client id/secret) → ``{"access_token", "instance_url", ...}``, or 400
  ``invalid_grant``/``invalid_client``/``unsupported_grant_type``.

The password is accepted with the security token appended (what simple-salesforce sends) or alone (a login from a
trusted IP range). simple-salesforce posts logins to ``https://{domain}.salesforce.com/...``: with
``domain="127.0.0.1:<port>/login"`` that is ``https://127.0.0.1:<port>/login.salesforce.com/services/...``,
so a leading ``/<name>.salesforce.com`` path segment is read as the login host and dropped.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from airflow_opsflow_testing.salesforce_endpoints import Reply

LOGIN_PATH = re.compile(r"^(?:/[^/]+\.salesforce\.com)?/services/(?:Soap/u/(?P<soap>\d+\.\d+)|oauth2/token)/?$",
                        re.IGNORECASE)
INVALID_LOGIN = "INVALID_LOGIN: Invalid username, password, security token; or user locked out."
SOAP_ENVELOPE = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
                 'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" '
                 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:sf="urn:fault.partner.soap.sforce.com">'
                 "<soapenv:Body>{}</soapenv:Body></soapenv:Envelope>")


@dataclass
class Credentials:
    username: str = "opsflow-bot@example.com"
    password: str = "opsflow-fake-password"
    security_token: str = "opsflowFakeSecurityToken"
    consumer_key: str = "3MVG9opsflowFakeConsumerKey"
    consumer_secret: str = "opsflow-fake-consumer-secret"

    def password_ok(self, username: str | None, password: str | None) -> bool:
        if username != self.username or password is None:
            return False
        return any(hmac.compare_digest(password.encode(), ok.encode())
                   for ok in (self.password + self.security_token, self.password))

    def client_ok(self, key: str | None, secret: str | None) -> bool:
        return key == self.consumer_key and secret is not None and hmac.compare_digest(
            secret.encode(), self.consumer_secret.encode())


class Sessions:
    """The session ids (access tokens) the fake issued; :meth:`expire` invalidates every one of them."""

    def __init__(self, org_id: str) -> None:
        self.org_id = org_id
        self._valid: set[str] = set()
        self._lock = threading.Lock()

    def issue(self) -> str:
        token = f"{self.org_id[:15]}!AQ{secrets.token_urlsafe(48)}"
        with self._lock:
            self._valid.add(token)
        return token

    def valid(self, token: str) -> bool:
        with self._lock:
            return token in self._valid

    def expire(self) -> None:
        with self._lock:
            self._valid.clear()


def login(path: str, raw: bytes, headers: Message, credentials: Credentials, sessions: Sessions, base_url: str,
          user_id: str) -> Reply | None:
    """The answer to a login request, or None when ``path`` is not a login endpoint."""
    m = LOGIN_PATH.match(path)
    if m is None:
        return None
    if m["soap"]:
        return _soap(m["soap"], raw, credentials, sessions, base_url, user_id)
    return _oauth(raw, headers, credentials, sessions, base_url, user_id)


def _soap(version: str, raw: bytes, credentials: Credentials, sessions: Sessions, base_url: str,
          user_id: str) -> Reply:
    try:
        root = ET.fromstring(raw)
    except ET.ParseError:
        return _fault("soapenv:Client", "INVALID_XML", "Unable to parse the request envelope")
    fields = {el.tag.rsplit("}", 1)[-1]: (el.text or "") for el in root.iter()}
    if not credentials.password_ok(fields.get("username"), fields.get("password")):
        return _fault("sf:INVALID_LOGIN", "INVALID_LOGIN", INVALID_LOGIN.split(": ", 1)[1])
    org = sessions.org_id[:15]
    server = f"{base_url}/services/Soap/u/{version}/{org}"
    result = (f"<metadataServerUrl>{base_url}/services/Soap/m/{version}/{org}</metadataServerUrl>"
              "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
              f"<serverUrl>{server}</serverUrl><sessionId>{escape(sessions.issue())}</sessionId>"
              f"<userId>{user_id}</userId><userInfo><organizationId>{sessions.org_id}</organizationId>"
              f"<organizationName>opsflow FakeSalesforce</organizationName><userEmail>{escape(credentials.username)}"
              f"</userEmail><userFullName>opsflow bot</userFullName><userId>{user_id}</userId>"
              f"<userName>{escape(credentials.username)}</userName></userInfo>")
    return Reply(200, SOAP_ENVELOPE.format(f"<loginResponse><result>{result}</result></loginResponse>"),
                 content_type="text/xml;charset=UTF-8")


def _fault(fault_code: str, code: str, message: str) -> Reply:
    body = (f"<soapenv:Fault><faultcode>{fault_code}</faultcode><faultstring>{code}: {escape(message)}</faultstring>"
            f"<detail><sf:LoginFault xsi:type=\"sf:LoginFault\"><sf:exceptionCode>{code}</sf:exceptionCode>"
            f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault>")
    return Reply(500, SOAP_ENVELOPE.format(body), content_type="text/xml;charset=UTF-8")


def _oauth(raw: bytes, headers: Message, credentials: Credentials, sessions: Sessions, base_url: str,
           user_id: str) -> Reply:
    form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    key, secret = form.get("client_id"), form.get("client_secret")
    scheme, _, encoded = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            key, _, secret = base64.b64decode(encoded.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            key = secret = None
    grant = form.get("grant_type")
    if grant not in ("password", "client_credentials"):
        return _oauth_error("unsupported_grant_type", "grant type not supported")
    if key != credentials.consumer_key:
        return _oauth_error("invalid_client_id", "client identifier invalid")
    if not credentials.client_ok(key, secret):
        return _oauth_error("invalid_client", "invalid client credentials")
    if grant == "password" and not credentials.password_ok(form.get("username"), form.get("password")):
        return _oauth_error("invalid_grant", "authentication failure")
    issued = str(int(time.time() * 1000))
    body: dict[str, Any] = {"access_token": sessions.issue(), "instance_url": base_url,
                            "id": f"{base_url}/id/{sessions.org_id}/{user_id}", "token_type": "Bearer",
                            "issued_at": issued, "signature": base64.b64encode(secrets.token_bytes(32)).decode()}
    return Reply(200, body)


def _oauth_error(error: str, description: str) -> Reply:
    return Reply(400, {"error": error, "error_description": description})
