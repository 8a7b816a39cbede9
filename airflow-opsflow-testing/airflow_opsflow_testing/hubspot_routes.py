"""Which handler of :class:`~airflow_opsflow_testing.hubspot_store.HubSpotCrm` answers a FakeHubSpot request.

:func:`route` names every endpoint (the names :meth:`FakeHubSpot.calls` and :meth:`FakeHubSpot.fail_next` take):

* objects, under ``/crm/v3/objects/{type}`` (and ``/crm/objects/v3/``, the dated ``/crm/objects/2026-03/``):
  ``list``, ``create``, ``get``, ``update``, ``archive``, ``batch/{create,read,update,upsert,archive}``, ``search``;
* ``/crm/v3/pipelines/{type}``: ``pipelines/list``, ``pipelines/create``, ``pipelines/get``, ``pipelines/stages``;
* ``/crm/v3/properties/{type}``: ``properties/list``, ``properties/create``, ``properties/get``;
* ``/crm/v4/objects/{type}/{id}/associations/...``: ``associations/default`` (PUT ``default/{to}/{toId}``),
  ``associations/create`` (PUT ``{to}/{toId}`` with specs), ``associations/list``, ``associations/archive``;
* ``/account-info/v3/details``: ``account-info`` (the portal id, for links into HubSpot's app);
* ``/crm/v4/associations/{from}/{to}/...``: ``associations/batch/{create,read,archive,associate/default}``,
  ``associations/labels``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_opsflow_testing import hubspot_associations as assoc
from airflow_opsflow_testing import hubspot_properties as properties
from airflow_opsflow_testing.hubspot_schema import validation_error
from airflow_opsflow_testing.hubspot_search import search
from airflow_opsflow_testing.hubspot_store import HubSpotCrm

_OBJECTS = ("/crm/v3/objects/", "/crm/objects/v3/", "/crm/objects/2026-03/")
_BATCH_OPS = ("create", "read", "update", "upsert", "archive")
_V4_BATCH = ("create", "read", "archive", "associate/default")


@dataclass
class Call:
    """A request as the handlers see it: the path segments after the API prefix, query and parsed body."""

    parts: list[str]
    query: dict[str, list[str]]
    body: Any

    def arg(self, name: str) -> str | None:
        return self.query[name][0] if self.query.get(name) else None

    def listed(self, name: str) -> list[str] | None:
        """A list parameter, repeated (``?properties=a&properties=b``) or comma-separated."""
        return [n for v in self.query.get(name, []) for n in v.split(",") if n] or None

    @property
    def archived(self) -> bool:
        return (self.arg("archived") or "false").lower() == "true"

    def limit(self, default: int) -> int:
        raw = self.arg("limit") or str(default)
        if not raw.isdigit():
            raise validation_error(f"limit must be a number, not {raw}")
        return int(raw)


Handler = Callable[[HubSpotCrm, Call], tuple[int, Any]]


PORTAL_ID = 24_681_357  # the fake account's id (HubSpot calls it the portal id)


def route(verb: str, path: str) -> tuple[str, str | None, Handler | None, list[str]]:
    """(endpoint name, object type segment, handler or None when unroutable, path segments)."""
    if path.rstrip("/") == "/account-info/v3/details" and verb == "GET":
        return "account-info", None, _account_info, []
    for prefix, table in ((_OBJECTS, _objects), (("/crm/v3/pipelines/",), _pipelines),
                          (("/crm/v3/properties/",), _properties), (("/crm/v4/objects/",), _v4_objects),
                          (("/crm/v4/associations/",), _v4_batch)):
        found = next((p for p in prefix if path.startswith(p)), None)
        if found is not None:
            parts = path[len(found):].strip("/").split("/")
            endpoint, handler = table(verb, parts)
            return endpoint, parts[0] or None, handler, parts
    return "unknown", None, None, []


def _method(verb: str, handlers: dict[str, tuple[str, Handler]]) -> tuple[str, Handler | None]:
    found = handlers.get(verb)
    return found if found is not None else ("unknown", None)


def _account_info(crm: HubSpotCrm, call: Call) -> tuple[int, Any]:
    """``GET /account-info/v3/details``: the account's id, type and time zone, as HubSpot answers it."""
    return 200, {"portalId": PORTAL_ID, "accountType": "STANDARD", "timeZone": "US/Eastern",
                 "companyCurrency": "USD", "additionalCurrencies": [], "utcOffset": "-05:00",
                 "utcOffsetMilliseconds": -18_000_000, "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1"}


# --- objects ---------------------------------------------------------------------------------------------

def _objects(verb: str, parts: list[str]) -> tuple[str, Handler | None]:
    if len(parts) == 1:
        return _method(verb, {"GET": ("list", _list), "POST": ("create", _create)})
    if len(parts) == 3 and parts[1] == "batch" and parts[2] in _BATCH_OPS:
        return f"batch/{parts[2]}", (_batch if verb == "POST" else None)
    if parts[1:] == ["search"] and verb == "POST":
        return "search", lambda crm, call: search(crm, crm.resolve(call.parts[0]), call.body)
    if len(parts) == 2 and parts[1] != "batch":
        return _method(verb, {"GET": ("get", _get), "PATCH": ("update", _update), "DELETE": ("archive", _archive)})
    return "unknown", None


def _list(crm: HubSpotCrm, call: Call) -> tuple[int, Any]:
    t = crm.resolve(call.parts[0])
    status, answer = crm.list_page(t, call.limit(10), call.arg("after"), call.listed("properties"), call.archived)
    for body in answer["results"]:
        assoc.attach(crm, t, body, call.listed("associations") or [])
    return status, answer


def _create(crm: HubSpotCrm, call: Call) -> tuple[int, Any]:
    return crm.create_one(crm.resolve(call.parts[0]), call.body)


def _get(crm: HubSpotCrm, call: Call) -> tuple[int, Any]:
    t = crm.resolve(call.parts[0])
    status, answer = crm.get_one(t, call.parts[1], call.arg("idProperty"), call.listed("properties"), call.archived)
    return status, assoc.attach(crm, t, answer, call.listed("associations") or [])


def _update(crm: HubSpotCrm, call: Call) -> tuple[int, Any]:
    return crm.update_one(crm.resolve(call.parts[0]), call.parts[1], call.arg("idProperty"), call.body)


def _archive(crm: HubSpotCrm, call: Call) -> tuple[int, Any]:
    return crm.archive_one(crm.resolve(call.parts[0]), call.parts[1])


def _batch(crm: HubSpotCrm, call: Call) -> tuple[int, Any]:
    return crm.batch(call.parts[2], crm.resolve(call.parts[0]), call.body, call.arg("idProperty"), call.archived)


# --- pipelines and properties ------------------------------------------------------------------------------

def _pipelines(verb: str, parts: list[str]) -> tuple[str, Handler | None]:
    if len(parts) == 1:
        return _method(verb, {"GET": ("pipelines/list", lambda crm, c: crm.pipelines.list_answer(c.parts[0])),
                              "POST": ("pipelines/create",
                                       lambda crm, c: crm.pipelines.create_answer(c.parts[0], c.body))})
    if len(parts) == 2:
        return _method(verb, {"GET": ("pipelines/get",
                                      lambda crm, c: crm.pipelines.get_answer(c.parts[0], c.parts[1]))})
    if len(parts) == 3 and parts[2] == "stages":
        return _method(verb, {"GET": ("pipelines/stages",
                                      lambda crm, c: crm.pipelines.get_answer(c.parts[0], c.parts[1], True))})
    return "unknown", None


def _properties(verb: str, parts: list[str]) -> tuple[str, Handler | None]:
    if len(parts) == 1:
        return _method(verb, {
            "GET": ("properties/list", lambda crm, c: properties.list_answer(crm, crm.resolve(c.parts[0]))),
            "POST": ("properties/create",
                     lambda crm, c: properties.create_answer(crm, crm.resolve(c.parts[0]), c.body))})
    if len(parts) == 2:
        return _method(verb, {"GET": ("properties/get", lambda crm, c: properties.get_answer(
            crm, crm.resolve(c.parts[0]), c.parts[1]))})
    return "unknown", None


# --- associations v4 ---------------------------------------------------------------------------------------

def _v4_objects(verb: str, parts: list[str]) -> tuple[str, Handler | None]:
    if len(parts) < 4 or parts[2] != "associations":
        return "unknown", None
    if len(parts) == 6 and parts[3] == "default":
        return _method(verb, {"PUT": ("associations/default", lambda crm, c: assoc.put_default(
            crm, crm.resolve(c.parts[0]), c.parts[1], crm.resolve(c.parts[4]), c.parts[5]))})
    if len(parts) == 5:
        return _method(verb, {
            "PUT": ("associations/create", lambda crm, c: assoc.put_labeled(
                crm, crm.resolve(c.parts[0]), c.parts[1], crm.resolve(c.parts[3]), c.parts[4], c.body)),
            "DELETE": ("associations/archive", _unlink)})
    if len(parts) == 4:
        return _method(verb, {"GET": ("associations/list", lambda crm, c: assoc.list_page(
            crm, crm.resolve(c.parts[0]), c.parts[1], crm.resolve(c.parts[3]), c.limit(500), c.arg("after")))})
    return "unknown", None


def _unlink(crm: HubSpotCrm, call: Call) -> tuple[int, Any]:
    a, b = crm.resolve(call.parts[0]), crm.resolve(call.parts[3])
    crm.associations.remove(a.name, call.parts[1], b.name, call.parts[4])
    return 204, None


def _v4_batch(verb: str, parts: list[str]) -> tuple[str, Handler | None]:
    if len(parts) == 3 and parts[2] == "labels":
        return _method(verb, {"GET": ("associations/labels", lambda crm, c: assoc.labels(
            crm.resolve(c.parts[0]), crm.resolve(c.parts[1])))})
    op = "/".join(parts[3:])
    if len(parts) >= 4 and parts[2] == "batch" and op in _V4_BATCH:
        return _method(verb, {"POST": (f"associations/batch/{op}", lambda crm, c: assoc.batch(
            crm, op, crm.resolve(c.parts[0]), crm.resolve(c.parts[1]), c.body))})
    return "unknown", None
