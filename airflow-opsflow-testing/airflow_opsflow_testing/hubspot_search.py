"""CRM search of :class:`~airflow_opsflow_testing.hubspot_server.FakeHubSpot`: ``POST /crm/v3/objects/{type}/search``.

Follows HubSpot's search guide: ``filterGroups`` are OR-ed, the filters of a group AND-ed (at most 5 groups, 10
filters a group, 25 in all, the limits since August 2024); operators EQ, NEQ, LT, LTE, GT, GTE, BETWEEN
(``value``..``highValue``), IN/NOT_IN (``values``), HAS_PROPERTY/NOT_HAS_PROPERTY, CONTAINS_TOKEN/NOT_CONTAINS_TOKEN
(``*`` wildcards); ``associations.{type}`` filters on associated record ids. One sort (``{"propertyName",
"direction"}``), ``limit`` at most 200, ``after`` an offset, and no paging past 10,000 results (400). Results
carry the requested properties (the type's defaults when none) plus ``hs_object_id``, ``createdate`` and the
last-modified date, and the answer a ``total``. String comparisons ignore case; numbers and dates compare as
numbers (dates as epoch milliseconds or ISO 8601). NEQ and NOT_IN also match records without the property.

Like HubSpot's search index, search is eventually consistent: :class:`SearchIndex` makes each write visible only
``lag`` seconds after it happened (a created record is missing, an updated one still shows its old values, an
archived one still appears), while reads by id see the write at once. Associations filters use live links.
Search has its own rate limit (HubSpot: five requests per second per account; the 429 says
``You have reached your secondly limit.``, policy ``SECONDLY``), enforced by the server with :class:`RateWindow`.
"""

from __future__ import annotations

import copy
import fnmatch
import math
import re
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_opsflow_testing.hubspot_schema import JsonDict, ObjectType, hubspot_time, validation_error

if TYPE_CHECKING:
    from airflow_opsflow_testing.hubspot_store import HubSpotCrm, HubSpotObject

MAX_LIMIT = 200
MAX_RESULTS = 10_000
MAX_GROUPS, MAX_GROUP_FILTERS, MAX_FILTERS = 5, 10, 25
OPERATORS = ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY",
             "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN")
_TOKEN = re.compile(r"[\w@.*-]+")
Matcher = Callable[["HubSpotObject"], bool]


class RateWindow:
    """At most ``limit`` requests per rolling ``window`` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._times: deque[float] = deque()

    def admit(self) -> float | None:
        """None when admitted (and counted), else the seconds until a slot frees."""
        now = time.monotonic()
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return self._times[0] + self.window - now
        self._times.append(now)
        return None


def secondly_limited() -> JsonDict:
    return {"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()), "policyName": "SECONDLY"}


def retry_after(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


class SearchIndex:
    """Versions of each record as search sees them: a write shows ``lag`` seconds after it happened."""

    def __init__(self, lag: float = 0.0) -> None:
        self.lag = lag
        self._versions: dict[str, dict[str, list[tuple[float, HubSpotObject]]]] = {}

    def record(self, obj: HubSpotObject) -> None:
        now = time.monotonic()
        versions = self._versions.setdefault(obj.object_type, {}).setdefault(obj.id, [])
        shown = [i for i, (at, _) in enumerate(versions) if at <= now]
        if shown:
            del versions[:shown[-1]]  # older than the version search already shows
        versions.append((now + self.lag, copy.deepcopy(obj)))

    def visible(self, type_name: str) -> list[HubSpotObject]:
        now, found = time.monotonic(), []
        for versions in self._versions.get(type_name, {}).values():
            shown = next((obj for at, obj in reversed(versions) if at <= now), None)
            if shown is not None and not shown.archived:
                found.append(shown)
        return sorted(found, key=lambda o: int(o.id))

    def flush(self) -> None:
        """Catch the index up: every record as it is now."""
        for records in self._versions.values():
            for versions in records.values():
                versions[:] = [(-math.inf, versions[-1][1])]

    def clear(self) -> None:
        self._versions.clear()


def search(crm: HubSpotCrm, t: ObjectType, body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict):
        raise validation_error("Invalid input JSON: Cannot build PublicObjectSearchRequest from a JSON "
                               f"{type(body).__name__}")
    limit, after = _int(body.get("limit"), 10, "limit"), _int(body.get("after"), 0, "after")
    if not 0 < limit <= MAX_LIMIT:
        raise validation_error(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    if after + limit > MAX_RESULTS:
        raise validation_error(f"Search results are limited to {MAX_RESULTS} records: after + limit must not "
                               f"exceed {MAX_RESULTS}")
    groups = _groups(crm, t, body.get("filterGroups") or [])
    query = str(body.get("query") or "").casefold().strip()
    hits = [o for o in crm.search_index.visible(t.name)
            if (not groups or any(all(m(o) for m in g) for g in groups)) and (not query or _text_match(t, o, query))]
    hits = _sorted(t, hits, body.get("sorts") or [])
    names = list(body.get("properties") or t.default_properties)
    names += [n for n in ("hs_object_id", "createdate", t.modified_property) if n not in names]
    answer: JsonDict = {"total": len(hits), "results": [crm.render(t, o, names) for o in hits[after:after + limit]]}
    if after + limit < len(hits):
        answer["paging"] = {"next": {"after": str(after + limit)}}
    return 200, answer


def _int(raw: Any, default: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise validation_error(f"{name} must be an integer, not {raw!r}") from None


def _groups(crm: HubSpotCrm, t: ObjectType, groups: Any) -> list[list[Matcher]]:
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise validation_error("Invalid input JSON: filterGroups must be a list of objects")
    filters = [g.get("filters") or [] for g in groups]
    if (len(groups) > MAX_GROUPS or any(len(f) > MAX_GROUP_FILTERS for f in filters)
            or sum(len(f) for f in filters) > MAX_FILTERS):
        raise validation_error(f"Too many filters: at most {MAX_GROUPS} filterGroups, {MAX_GROUP_FILTERS} filters "
                               f"per group and {MAX_FILTERS} filters in all")
    return [[_matcher(crm, t, f) for f in group] for group in filters]


def _matcher(crm: HubSpotCrm, t: ObjectType, spec: Any) -> Matcher:
    if not isinstance(spec, dict) or spec.get("operator") not in OPERATORS or not spec.get("propertyName"):
        raise validation_error(f"Invalid filter {spec!r}: needs propertyName and an operator of {list(OPERATORS)}")
    name, op = str(spec["propertyName"]), str(spec["operator"])
    if name.startswith("associations."):
        other = crm.resolve(name.removeprefix("associations."))

        def linked(obj: HubSpotObject) -> str | None:
            ids = crm.associations.of(crm, t.name, obj.id, other.name)
            return ",".join(ids) or None
        return _compare(op, spec, lambda obj: linked(obj), _as_ids)
    kind = _kind(t, name)
    return _compare(op, spec, lambda obj: _value(t, obj, name), lambda raw: _key(kind, raw, name))


def _kind(t: ObjectType, name: str) -> str:
    if name == "hs_object_id":
        return "number"
    if name in ("createdate", "hs_createdate", t.modified_property):
        return "datetime"
    prop = t.properties.get(name)
    if prop is None:
        raise validation_error(f"There is no property {name} on {t.name}: filters and sorts need existing "
                               "properties")
    return prop.type


def _value(t: ObjectType, obj: HubSpotObject, name: str) -> str | None:
    if name == "hs_object_id":
        return obj.id
    if name in ("createdate", "hs_createdate"):
        return hubspot_time(obj.created_at)
    if name == t.modified_property:
        return hubspot_time(obj.updated_at)
    return obj.properties.get(name)


def _key(kind: str, raw: Any, name: str) -> Any:
    """A comparable form of a filter value or stored value of a property of type ``kind``."""
    text = str(raw).strip()
    try:
        if kind == "number":
            return float(text)
        if kind in ("date", "datetime"):
            if re.fullmatch(r"-?\d+", text):
                return float(text)
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000
    except ValueError:
        raise validation_error(f"{raw!r} is not a valid {kind} value for {name}") from None
    return text.casefold()


def _as_ids(raw: Any) -> Any:
    return str(raw).strip()


def _compare(op: str, spec: JsonDict, read: Callable[[HubSpotObject], str | None],
             key: Callable[[Any], Any]) -> Matcher:
    if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        return lambda obj: (read(obj) is not None) == (op == "HAS_PROPERTY")
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = str(_required(spec, "value", op)).casefold()
        return lambda obj: any(fnmatch.fnmatchcase(tok, pattern) for tok in _TOKEN.findall(
            str(read(obj) or "").casefold())) == (op == "CONTAINS_TOKEN")
    hit = _test(op, spec, key)
    negative = op in ("NEQ", "NOT_IN")  # tested as EQ/IN, then negated

    def match(obj: HubSpotObject) -> bool:
        raw = read(obj)
        if raw is None:
            return negative  # absent values match the negative operators, as in HubSpot's index
        haves = [key(part) for part in raw.split(",")] if key is _as_ids else [key(raw)]
        return any(_safe(hit, have) for have in haves) != negative
    return match


def _required(spec: JsonDict, name: str, op: str) -> Any:
    if spec.get(name) is None:
        raise validation_error(f"{op} needs a {name}")
    return spec[name]


def _test(op: str, spec: JsonDict, key: Callable[[Any], Any]) -> Callable[[Any], bool]:
    if op in ("IN", "NOT_IN"):
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise validation_error(f"{op} needs a non-empty values list")
        wanted = {key(v) for v in values}
        return lambda have: have in wanted
    value = key(_required(spec, "value", op))
    if op == "BETWEEN":
        high = key(_required(spec, "highValue", op))
        return lambda have: bool(value <= have <= high)
    tests: dict[str, Callable[[Any], bool]] = {
        "EQ": lambda have: have == value, "NEQ": lambda have: have == value, "LT": lambda have: have < value,
        "LTE": lambda have: have <= value, "GT": lambda have: have > value, "GTE": lambda have: have >= value}
    return tests[op]


def _safe(test: Callable[[Any], bool], have: Any) -> bool:
    try:
        return test(have)
    except TypeError:  # a number property compared with a string: no match rather than an error
        return False


def _text_match(t: ObjectType, obj: HubSpotObject, query: str) -> bool:
    return any(query in (obj.properties.get(name) or "").casefold()
               for name, prop in t.properties.items() if prop.type == "string")


def _sorted(t: ObjectType, hits: list[HubSpotObject], sorts: Any) -> list[HubSpotObject]:
    if not isinstance(sorts, list) or len(sorts) > 1:
        raise validation_error("sorts must be a list of at most one sort")
    if not sorts:
        return hits
    sort = sorts[0]
    if isinstance(sort, str):
        name, descending = sort.lstrip("-"), sort.startswith("-")
    elif isinstance(sort, dict) and sort.get("propertyName"):
        name, descending = str(sort["propertyName"]), str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING"
    else:
        raise validation_error(f"Invalid sort {sort!r}: needs propertyName and direction")
    kind = _kind(t, name)
    present = [o for o in hits if _value(t, o, name) is not None]
    absent = [o for o in hits if _value(t, o, name) is None]
    present.sort(key=lambda o: _key(kind, _value(t, o, name), name), reverse=descending)
    return present + absent  # records without the value come last either way
