"""The subset of Zendesk's search query syntax the fake understands, matched against indexed records.

Terms are separated by spaces; ``"quoted phrases"`` stay one term. A term is ``key:value`` (equality),
``key<value`` / ``key>value`` / ``key<=value`` / ``key>=value`` (status and priority in Zendesk's order, dates),
``-term`` (negation) or free text (every word must occur in the subject/comments, or name/email/notes).
Keys: ``type`` (ticket, user, organization), ``status``, ``priority``, ``ticket_type``, ``tags``/``tag``,
``external_id``, ``subject``, ``description``, ``organization`` (id or name), ``requester``/``assignee`` (ids),
``created``/``updated``/``solved`` (``YYYY-MM-DD``, an ISO time, or relative: ``4hours``, ``2days``...),
``order_by``/``sort``, and any other field of the record's JSON (``email``, ``name``, ``role``...).
A trailing ``*`` in a value is a wildcard. Several ``key:value`` terms with the same key match any of the values
(``tags:a tags:b``, as zenpy's list arguments send them); different keys must all match.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_opsflow_testing.zendesk_schema import PRIORITIES, STATUSES, JsonDict

TERM = re.compile(r'(-?)(?:([A-Za-z_][\w.]*)(<=|>=|:|<|>))?("[^"]*"|\S+)')
RELATIVE = re.compile(r"(\d+)(minute|hour|day|week|month|year)s?$")
ORDERED = {"status": STATUSES, "priority": PRIORITIES}
DATES = {"created": "created_at", "updated": "updated_at", "solved": "_solved_at"}
ALIASES = {"tag": "tags", "ticket_type": "type", "requester": "requester_id", "assignee": "assignee_id",
           "submitter": "submitter_id", "group": "group_id"}
SORTS = ("created_at", "updated_at", "priority", "status", "ticket_type")


@dataclass(frozen=True)
class Term:
    negated: bool
    key: str | None  # None: free text
    op: str
    value: str


@dataclass
class Query:
    kinds: set[str]
    terms: list[Term]
    order_by: str | None = None
    sort: str | None = None


def parse(text: str) -> Query:
    query = Query(set(), [])
    for negated, key, op, raw in TERM.findall(text or ""):
        value = raw[1:-1] if len(raw) > 1 and raw.startswith('"') and raw.endswith('"') else raw
        key = key.lower() if key else None
        if key == "type" and not negated:
            query.kinds.add(value.lower())
        elif key == "order_by":
            query.order_by = value.lower()
        elif key == "sort":
            query.sort = value.lower()
        else:
            query.terms.append(Term(bool(negated), key, op, value))
    return query


def search(docs: list[JsonDict], text: str, now: datetime) -> list[JsonDict]:
    """The documents matching ``text``, in id order (or ``order_by``/``sort`` from the query)."""
    query = parse(text)
    kinds = {"organization" if k == "org" else k for k in query.kinds}
    found = [d for d in docs if (not kinds or d["_kind"] in kinds) and _matches(d, query.terms, now)]
    if query.order_by:
        return sort(found, query.order_by, query.sort or "desc")
    return sorted(found, key=lambda d: (d["_kind"], d["id"]))


def sort(docs: list[JsonDict], by: str, order: str) -> list[JsonDict]:
    by = {"created": "created_at", "updated": "updated_at", "ticket_type": "type"}.get(by, by)

    def key(doc: JsonDict) -> Any:
        value = doc.get(by)
        rank = ORDERED.get(by)
        return (value is not None, rank.index(value) if rank and value in rank else value or "", doc["id"])

    return sorted(docs, key=key, reverse=order != "asc")


def _matches(doc: JsonDict, terms: list[Term], now: datetime) -> bool:
    alternatives: dict[str, list[Term]] = {}
    for term in terms:
        if term.key is not None and term.op == ":" and not term.negated:
            alternatives.setdefault(term.key, []).append(term)
        elif _term(doc, term, now) == term.negated:
            return False
    return all(any(_term(doc, t, now) for t in group) for group in alternatives.values())


def _term(doc: JsonDict, term: Term, now: datetime) -> bool:
    if term.key is None:
        return all(word in doc.get("_text", "") for word in term.value.lower().split())
    key = ALIASES.get(term.key, term.key)
    if key in DATES:
        return _date(doc.get(DATES[key]), term, now)
    if key == "organization" and doc["_kind"] == "ticket":
        return _text_match(doc.get("_organization"), term.value) or _text_match(doc.get("organization_id"),
                                                                                 term.value)
    if key == "description" and doc["_kind"] == "ticket":
        return term.value.lower() in str(doc.get("description") or "").lower()
    value = doc.get(key)
    if key in ORDERED and term.op != ":":
        rank = ORDERED[key]
        if value not in rank or term.value.lower() not in rank:
            return False
        a, b = rank.index(value), rank.index(term.value.lower())
        return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[term.op]
    if isinstance(value, list):
        return any(_text_match(v, term.value) for v in value)
    return _text_match(value, term.value)


def _text_match(value: Any, wanted: str) -> bool:
    if value is None:
        return wanted.lower() in ("none", "null")
    if isinstance(value, bool):
        value = str(value).lower()
    have, want = str(value).lower(), wanted.lower()
    return fnmatch.fnmatchcase(have, want) if "*" in want else have == want


def _date(raw: Any, term: Term, now: datetime) -> bool:
    if not raw:
        return False
    have = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    relative = RELATIVE.match(term.value.lower())
    if relative:
        n, unit = int(relative[1]), relative[2]
        days = {"minute": 1 / 1440, "hour": 1 / 24, "day": 1, "week": 7, "month": 30, "year": 365}[unit]
        edge = now - timedelta(days=n * days)
        # relative values count back from now: created>4hours is "created after now - 4 hours"
        return {">": have > edge, ">=": have >= edge, "<": have < edge, "<=": have <= edge, ":": have >= edge}[term.op]
    try:
        start = datetime.fromisoformat(term.value.replace("Z", "+00:00"))
    except ValueError:
        return False
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    whole_day = len(term.value) == 10
    end = start + timedelta(days=1) if whole_day else start
    return {">": have >= end if whole_day else have > start, ">=": have >= start, "<": have < start,
            "<=": have < end if whole_day else have <= start, ":": start <= have < end if whole_day
            else have == start}[term.op]
