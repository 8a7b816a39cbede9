"""A JQL subset for :class:`~airflow_opsflow_testing.jira_server.FakeJira`: what an alerting tool sends, no more.

Supported: ``project``, ``labels``, ``status``, ``statusCategory``, ``resolution`` (``Unresolved``),
``priority``, ``issuetype``, ``component``, ``assignee``/``reporter`` (``currentUser()``), ``key``/``issuekey``/
``id`` with ``= != in (...) not in (...) is [not] EMPTY``; ``created``/``updated``/``resolutiondate`` with
``= != < <= > >=`` against ``-7d``/``-60m``/``"-1w 2d"``, ``"2024-05-01 [12:00]"`` or ``now()``; ``AND``/``OR``
and parentheses; ``ORDER BY`` status, statusCategory, priority, key, project, created, updated, resolutiondate.

Jira's rules kept: keywords and values are case-insensitive; ``!=``/``not in`` never match an empty field
(``resolution != "Won't Fix"`` skips unresolved issues); an unknown project/status/... value or issue key is
a 400; EMPTY sorts as the largest value. Anything else (text search ``~``, ``NOT``, custom fields,
history operators, other functions) is refused with a 400 naming the fake, never answered approximately.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

Doc = Mapping[str, Any]  # an issue as the query sees it: field -> list[set[str]] (aliases) or datetime | None
Pred = Callable[[Doc], bool]

DISCRETE = {"project", "labels", "status", "statuscategory", "resolution", "priority", "issuetype", "components",
            "assignee", "reporter", "key"}
DATES = {"created", "updated", "resolutiondate"}
FIELD_ALIASES = {"type": "issuetype", "component": "components", "issuekey": "key", "id": "key", "issue": "key",
                 "resolved": "resolutiondate", "createddate": "created", "updateddate": "updated"}
DISPLAY = {"statuscategory": "statusCategory", "components": "component"}
TEXT_FIELDS = {"summary", "description", "text", "comment", "environment"}
SORTABLE = {"status", "statuscategory", "priority", "key", "project", "created", "updated", "resolutiondate"}
KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}
RESERVED = set(";?|*/%^$#@[]")
FAKE = "(opsflow FakeJira supports a JQL subset)"
DATE_HELP = ("Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', "
             "or a period format e.g. '-5d', '4w 2d'.")

_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>!=|<=|>=|!~|=|<|>|~)"""
                    r"""|(?P<punct>[(),])|(?P<word>[^\s(),=!<>~"']+))""")
_PERIOD = re.compile(r"^([+-]?)((?:\d+[wdhm]\s*)+)$")
_PART = re.compile(r"(\d+)([wdhm])")
_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
_EMPTY = object()  # the EMPTY/NULL keyword as a value


class JqlError(Exception):
    """A query Jira (or this fake) refuses: answered 400 ``{"errorMessages": [message]}``."""


@dataclass
class JqlContext:
    """What validation and evaluation need from the tracker."""

    values: Mapping[str, set[str]]  # validated field -> every accepted value, lower-case
    key_exists: Callable[[str], bool]
    current_user: set[str]
    now: datetime
    lenient: bool = False  # validateQuery=false/warn: an unknown value matches nothing, with a warning
    warnings: list[str] = field(default_factory=list)


@dataclass
class Query:
    where: Pred | None  # None: no restriction (an "unbounded" query, which Jira Cloud refuses)
    order: list[tuple[str, bool]]  # (field, descending)

    def matches(self, doc: Doc) -> bool:
        return self.where is None or self.where(doc)

    def sort(self, docs: Sequence[Doc]) -> list[Doc]:
        """Ordered as Jira would: the ORDER BY fields, EMPTY last ascending; ties and no ORDER BY: key DESC."""
        out = sorted(docs, key=lambda d: d["sort:key"], reverse=True)
        for name, desc in reversed(self.order):  # stable sorts, last key first
            out.sort(key=_sort_key(name), reverse=desc)
        return out


def _sort_key(name: str) -> Callable[[Doc], tuple[bool, Any]]:
    return lambda d: (d[f"sort:{name}"] is None, d[f"sort:{name}"])  # EMPTY compares as the largest value


@dataclass
class _Tok:
    kind: str  # str | op | punct | word | end
    text: str
    pos: int

    @property
    def low(self) -> str:
        return self.text.lower() if self.kind == "word" else ""


def _syntax(message: str, tok: _Tok) -> JqlError:
    return JqlError(f"Error in the JQL Query: {message} (line 1, character {tok.pos + 1})")


def _unsupported(what: str) -> JqlError:
    return JqlError(f"Error in the JQL Query: {what} is not supported here {FAKE}.")


def _tokenize(jql: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while jql[pos:].strip():
        m = _TOKEN.match(jql, pos)
        if m is None or m.lastgroup is None:
            start = pos + len(jql[pos:]) - len(jql[pos:].lstrip())
            what = f"The character '{jql[start]}' is not valid."
            if jql[start] in "\"'":
                what = "Unterminated string literal."
            raise _syntax(what, _Tok("word", "", start))
        kind, text = m.lastgroup, m.group(m.lastgroup)
        start = m.start(kind)
        if kind == "str":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        elif kind == "word":
            text = {"&&": "and", "&": "and", "||": "or", "|": "or"}.get(text, text)
            bad = next((c for c in text if c in RESERVED), None)
            if bad and not re.fullmatch(r"cf\[\d+\]", text, re.IGNORECASE):
                raise _syntax(f"The character '{bad}' is a reserved JQL character. You must enclose it in a string "
                              f"or use the escape '\\u{ord(bad):04x}' instead.", _Tok(kind, text, start))
        toks.append(_Tok(kind, text, start))
        pos = m.end()
    toks.append(_Tok("end", "", len(jql)))
    return toks


class _Parser:
    def __init__(self, jql: str, ctx: JqlContext) -> None:
        self.toks = _tokenize(jql)
        self.i = 0
        self.ctx = ctx

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, text: str, what: str) -> None:
        if self.tok.text.lower() != text or self.tok.kind == "str":
            got = self.tok.text or "<EOF>"
            raise _syntax(f"Expecting {what} but got '{got}'.", self.tok)
        self.take()

    def query(self) -> Query:
        where = None if self.tok.kind == "end" or self.tok.low == "order" else self.or_expr()
        order: list[tuple[str, bool]] = []
        if self.tok.low == "order":
            self.take()
            self.expect("by", "'by'")
            order.append(self.sort_item())
            while self.tok.text == "," and self.tok.kind == "punct":
                self.take()
                order.append(self.sort_item())
        if self.tok.kind != "end":
            raise _syntax(f"Expecting either 'OR' or 'AND' but got '{self.tok.text}'.", self.tok)
        return Query(where, order)

    def or_expr(self) -> Pred:
        parts = [self.and_expr()]
        while self.tok.low == "or":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda d: any(p(d) for p in parts))

    def and_expr(self) -> Pred:
        parts = [self.primary()]
        while self.tok.low == "and":
            self.take()
            parts.append(self.primary())
        return parts[0] if len(parts) == 1 else (lambda d: all(p(d) for p in parts))

    def primary(self) -> Pred:
        if self.tok.kind == "punct" and self.tok.text == "(":
            self.take()
            inner = self.or_expr()
            self.expect(")", "')'")
            return inner
        if self.tok.low == "not":
            raise _unsupported("The NOT operator")
        return self.clause()

    def field_name(self) -> str:
        tok = self.take()
        if tok.kind not in ("word", "str") or (tok.kind == "word" and tok.low in KEYWORDS):
            raise _syntax(f"Expecting a field name but got '{tok.text or '<EOF>'}'.", tok)
        name = FIELD_ALIASES.get(tok.text.lower(), tok.text.lower())
        if name in DISCRETE | DATES:
            return name
        if name in TEXT_FIELDS:
            raise _unsupported(f"Searching the text field '{tok.text}'")
        if name.startswith("cf[") or name in ("team", "runbook"):
            raise _unsupported(f"Searching the custom field '{tok.text}'")
        raise JqlError(f"Field '{tok.text}' does not exist or you do not have permission to view it.")

    def operator(self) -> str:
        tok = self.take()
        if tok.kind == "op":
            if tok.text in ("~", "!~"):
                raise _unsupported(f"The text-search operator '{tok.text}'")
            return tok.text
        if tok.low == "in":
            return "in"
        if tok.low in ("is", "not"):
            if tok.low == "not":
                self.expect("in", "'in'")
                return "not in"
            if self.tok.low == "not":
                self.take()
                return "is not"
            return "is"
        if tok.low in ("was", "changed"):
            raise _unsupported(f"The history operator '{tok.text.upper()}'")
        raise _syntax(f"Expecting operator but got '{tok.text or '<EOF>'}'.", tok)

    def value(self) -> Any:
        tok = self.take()
        if tok.kind == "str":
            return tok.text
        if tok.kind != "word" or tok.low in KEYWORDS - {"empty", "null"}:
            raise _syntax(f"Expecting either a value, list or function but got '{tok.text or '<EOF>'}'.", tok)
        if tok.low in ("empty", "null"):
            return _EMPTY
        if self.tok.kind == "punct" and self.tok.text == "(":  # a function call
            self.take()
            while not (self.tok.kind == "punct" and self.tok.text == ")") and self.tok.kind != "end":
                self.take()
            self.expect(")", "')'")
            if tok.low in ("currentuser", "now"):
                return (tok.low,)
            raise _unsupported(f"The function '{tok.text}()'")
        return tok.text

    def clause(self) -> Pred:
        name = self.field_name()
        op = self.operator()
        if op in ("in", "not in"):
            self.expect("(", "'('")
            values = [self.value()]
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.take()
                values.append(self.value())
            self.expect(")", "')'")
        else:
            values = [self.value()]
        if op in ("is", "is not") and values[0] is not _EMPTY:
            raise JqlError(f"The operator '{op.upper()}' only supports EMPTY or NULL for the field '{name}'.")
        if name in DATES:
            return self.date_clause(name, op, values[0])
        return self.discrete_clause(name, op, values)

    def discrete_clause(self, name: str, op: str, values: list[Any]) -> Pred:
        if op in ("<", "<=", ">", ">="):
            raise _unsupported(f"The operator '{op}' on the field '{DISPLAY.get(name, name)}'")
        if name == "resolution":  # "Unresolved" is Jira's name for an empty resolution
            values = [_EMPTY if isinstance(v, str) and v.lower() == "unresolved" else v for v in values]
        wanted = [v if v is _EMPTY else self.check(name, v) for v in values]
        if op in ("=", "!=") and wanted[0] is _EMPTY:
            op = "is" if op == "=" else "is not"
        has_empty = any(v is _EMPTY for v in wanted)
        names = {v for v in wanted if isinstance(v, str)}

        def hit(doc: Doc) -> bool:
            return any(aliases & names for aliases in doc[name])

        if op == "is":
            return lambda d: not d[name]
        if op == "is not":
            return lambda d: bool(d[name])
        if op in ("=", "in"):
            return lambda d: hit(d) or (has_empty and not d[name])
        return lambda d: bool(d[name]) and not hit(d)  # != and not in never match an empty field

    def check(self, name: str, raw: Any) -> str | None:
        """The lower-cased value, validated as Jira does; None when lenient and unknown (matches nothing)."""
        if isinstance(raw, tuple):
            if raw[0] == "currentuser" and name in ("assignee", "reporter"):
                return next(iter(self.ctx.current_user), None)
            raise _unsupported(f"The function '{raw[0]}()' on the field '{name}'")
        value = str(raw).lower()
        if name == "key":
            if not re.fullmatch(r"[a-z][a-z0-9_]*-\d+|\d+", value):
                raise JqlError(f"The issue key '{raw}' for field '{DISPLAY.get(name, name)}' is invalid.")
            if not self.ctx.key_exists(value):
                return self._unknown(f"An issue with key '{raw}' does not exist for field 'key'.")
            return value
        known = self.ctx.values.get(name)
        if known is not None and value not in known:
            return self._unknown(f"The value '{raw}' does not exist for the field '{DISPLAY.get(name, name)}'.")
        return value

    def _unknown(self, message: str) -> str | None:
        if not self.ctx.lenient:
            raise JqlError(message)
        self.ctx.warnings.append(message)
        return None  # matches nothing

    def date_clause(self, name: str, op: str, raw: Any) -> Pred:
        if op in ("in", "not in"):
            raise _unsupported(f"The operator '{op.upper()}' on the date field '{name}'")
        if raw is _EMPTY or op in ("is", "is not"):
            empty = op in ("is", "=")
            return lambda d: (d[name] is None) == empty
        when = self.date(name, raw)
        compare: dict[str, Callable[[datetime], bool]] = {
            "=": lambda v: v == when, "!=": lambda v: v != when, "<": lambda v: v < when,
            "<=": lambda v: v <= when, ">": lambda v: v > when, ">=": lambda v: v >= when}
        test = compare[op]
        return lambda d: d[name] is not None and test(d[name])

    def date(self, name: str, raw: Any) -> datetime:
        if raw == ("now",):
            return self.ctx.now
        text = str(raw).strip()
        if m := _PERIOD.match(text):
            delta = sum((int(n) * _UNITS[u] for n, u in _PART.findall(m.group(2))), timedelta())
            return self.ctx.now - delta if m.group(1) == "-" else self.ctx.now + delta
        for fmt in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
        raise JqlError(f"Date value '{raw}' for field '{name}' is invalid. {DATE_HELP}")

    def sort_item(self) -> tuple[str, bool]:
        tok = self.take()
        name = FIELD_ALIASES.get(tok.text.lower(), tok.text.lower())
        if tok.kind not in ("word", "str") or tok.low in KEYWORDS:
            raise _syntax(f"Expecting a field name but got '{tok.text or '<EOF>'}'.", tok)
        if name in ("labels", "components"):
            raise JqlError(f"Field '{tok.text}' does not support sorting.")
        if name not in SORTABLE:
            known = name in DISCRETE | DATES | TEXT_FIELDS or name.startswith("cf[") or name in ("team", "runbook")
            if not known:
                raise JqlError(f"Not able to sort using field '{tok.text}'.")
            raise _unsupported(f"Sorting by '{tok.text}'")
        desc = False
        if self.tok.low in ("asc", "desc"):
            desc = self.take().low == "desc"
        return name, desc


def parse(jql: str, ctx: JqlContext) -> Query:
    """Parse ``jql`` against ``ctx``; raises :class:`JqlError` with Jira's wording (or the fake's limits)."""
    return _Parser(jql or "", ctx).query()

