"""A SOQL subset for FakeSalesforce: what a sync source or a ticket lookup sends, no more.

``SELECT f1, f2 | COUNT() FROM Obj [WHERE ...] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n]
[OFFSET n]``; conditions compare a field with ``= != <> < <= > >= LIKE``, ``[NOT] IN (...)``, combine with
``AND``/``OR``/``NOT`` and parentheses. Values: 'strings' (``\\'`` escapes), numbers, ``true``/``false``, ``null``,
dates ``2024-05-01``, datetimes ``2024-05-01T12:00:00Z`` and ``TODAY``/``YESTERDAY``/``TOMORROW``/
``LAST_N_DAYS:n``/``NEXT_N_DAYS:n``.

SOQL's rules kept: keywords, object and field names are case-insensitive, text compares case-insensitively,
``!=``/``NOT IN`` match null fields, ``AND`` and ``OR`` never mix without parentheses, a value must have the
field's type ("value of filter criterion for field 'X' must be of type string and should be enclosed in
quotes"), ids must be ids, unknown objects are ``INVALID_TYPE`` and unknown fields ``INVALID_FIELD``, both with
Salesforce's caret-and-position prefix. The field list may follow parent relationships (``Account.Name``,
``Parent__r.Name``: a lookup's relationship name, then a field of the object it points to; an unknown one is
``INVALID_FIELD`` "Didn't understand relationship 'X' in field path"); a null lookup makes its fields null.
Relationship paths in ``WHERE``/``ORDER BY``, subqueries, ``GROUP BY``, ``FIELDS()``, ``USING SCOPE``... are
refused with ``MALFORMED_QUERY`` naming the fake, never answered approximately.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from airflow_opsflow_testing.salesforce_schema import (
    NUMBER_TYPES,
    TEXT_TYPES,
    SalesforceError,
    SfField,
    SfObject,
    normalize_id,
    parse_date,
    parse_datetime,
)

FAKE = "(opsflow FakeSalesforce supports a SOQL subset)"
INVALID_TYPE = ("sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to "
                "append the '__c' after the entity name. Please reference your WSDL or the describe call for the "
                "appropriate names.")
INVALID_FIELD = ("No such column '{}' on entity '{}'. If you are attempting to use a custom field, be sure to "
                 "append the '__c' after the custom field name. Please reference your WSDL or the describe call "
                 "for the appropriate names.")
INVALID_RELATIONSHIP = ("Didn't understand relationship '{}' in field path. If you are attempting to use a custom "
                        "relationship, be sure to append the '__r' after the custom relationship name. Please "
                        "reference your WSDL or the describe call for the appropriate names.")
KEYWORDS = {"select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "asc", "desc", "nulls",
            "first", "last", "limit", "offset", "null", "true", "false", "count"}
UNSUPPORTED = {"group", "having", "using", "with", "for", "typeof", "includes", "excludes", "fields"}
_TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<op>!=|<>|<=|>=|=|<|>)|(?P<punct>[(),])"""
                    r"""|(?P<word>[A-Za-z0-9_.:+\-]+))""")
_DATE_CONSTANT = re.compile(r"^(TODAY|YESTERDAY|TOMORROW|(LAST|NEXT)_N_DAYS:(\d+))$", re.IGNORECASE)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\",
            "%": "\\%", "_": "\\_"}


@dataclass
class _Tok:
    kind: str  # "str" | "op" | "punct" | "word" | "end"
    text: str
    pos: int


@dataclass(frozen=True)
class _Range:
    """A date constant: the UTC days [start, end) it covers."""

    start: date
    end: date


Row = dict[str, Any]
Pred = Callable[[Row], bool]


@dataclass(frozen=True)
class Column:
    """A selected field: of the queried object, or of a parent reached through lookups (``Account.Name``)."""

    hops: tuple[tuple[SfField, str], ...]  # (lookup field, its relationship name), from the queried object up
    field: SfField

    @property
    def name(self) -> str:
        """The column as Salesforce names it: relationship names and the field's API name, dotted."""
        return ".".join([*(relation for _, relation in self.hops), self.field.name])

    def value(self, row: Row, parent: Callable[[Any], Row | None]) -> Any:
        """The value for ``row``; ``parent(id)`` is the record a lookup points to (None: none, or deleted)."""
        for lookup, _ in self.hops:
            found = parent(row.get(lookup.name))
            if found is None:
                return None
            row = found
        return row.get(self.field.name)


@dataclass
class Query:
    obj: SfObject
    columns: list[Column]  # empty for COUNT()
    count: bool
    where: Pred | None
    order: list[tuple[SfField, bool, bool]]  # (field, descending, nulls first)
    limit: int | None
    offset: int

    def run(self, rows: Sequence[Row]) -> list[Row]:
        out = [r for r in rows if self.where is None or self.where(r)]
        for f, desc, nulls_first in reversed(self.order):  # stable sorts, last key first
            present = sorted((r for r in out if r.get(f.name) is not None), key=_sorter(f), reverse=desc)
            empty = [r for r in out if r.get(f.name) is None]
            out = empty + present if nulls_first else present + empty
        return out[self.offset:][:self.limit] if self.limit is not None else out[self.offset:]


class SoqlError(SalesforceError):
    pass


class _Parser:
    def __init__(self, text: str, resolve: Callable[[str], SfObject | None], today: date) -> None:
        self.text, self.resolve, self.today = text, resolve, today
        self.toks: list[_Tok] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                bad = pos + len(text[pos:]) - len(text[pos:].lstrip())
                raise self.error("MALFORMED_QUERY", f"unexpected token: '{text[bad]}'", bad)
            kind = m.lastgroup or "end"
            self.toks.append(_Tok(kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.toks.append(_Tok("end", "", len(text)))
        self.i = 0

    # --- errors and tokens -----------------------------------------------------------------------------

    def error(self, code: str, message: str, pos: int) -> SoqlError:
        """Salesforce's form: the line, a caret under the position, ``ERROR at Row:r:Column:c`` and the text."""
        row = self.text.count("\n", 0, pos) + 1
        line_start = self.text.rfind("\n", 0, pos) + 1
        line_end = self.text.find("\n", pos)
        line = self.text[line_start:line_end if line_end != -1 else len(self.text)]
        col = pos - line_start + 1
        return SoqlError(400, code, f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{message}")

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def is_kw(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.text.lower() in words

    def expect_kw(self, word: str) -> _Tok:
        tok = self.next()
        if tok.kind != "word" or tok.text.lower() != word:
            raise self.unexpected(tok)
        return tok

    def expect(self, text: str) -> None:
        tok = self.next()
        if tok.text != text:
            raise self.unexpected(tok)

    def unexpected(self, tok: _Tok) -> SoqlError:
        if tok.kind == "end":
            return self.error("MALFORMED_QUERY", "unexpected token: <EOF>", max(0, tok.pos - 1))
        if tok.kind == "word" and tok.text.lower() in UNSUPPORTED:
            return self.error("MALFORMED_QUERY", f"unexpected token: '{tok.text}' {FAKE}", tok.pos)
        return self.error("MALFORMED_QUERY", f"unexpected token: '{tok.text}'", tok.pos)

    # --- grammar ---------------------------------------------------------------------------------------

    def parse(self) -> Query:
        self.expect_kw("select")
        count, names = False, []
        if self.is_kw("count") and self.toks[self.i + 1].text == "(":
            self.next()
            self.expect("(")
            self.expect(")")
            count = True
        else:
            names.append(self.name_token(path=True))
            while self.peek().text == ",":
                self.next()
                names.append(self.name_token(path=True))
        self.expect_kw("from")
        obj_tok = self.next()
        if obj_tok.kind != "word" or obj_tok.text.lower() in KEYWORDS:
            raise self.unexpected(obj_tok)
        obj = self.resolve(obj_tok.text)
        if obj is None:
            raise self.error("INVALID_TYPE", INVALID_TYPE.format(obj_tok.text), obj_tok.pos)
        columns = [self.column(obj, tok) for tok in names]
        where = None
        if self.is_kw("where"):
            self.next()
            where = self.condition(obj)
        order: list[tuple[SfField, bool, bool]] = []
        if self.is_kw("order"):
            self.next()
            self.expect_kw("by")
            while True:
                f = self.field(obj, self.name_token())
                desc = False
                if self.is_kw("asc", "desc"):
                    desc = self.next().text.lower() == "desc"
                nulls_first = not desc
                if self.is_kw("nulls"):
                    self.next()
                    if not self.is_kw("first", "last"):
                        raise self.unexpected(self.peek())
                    nulls_first = self.next().text.lower() == "first"
                order.append((f, desc, nulls_first))
                if self.peek().text != ",":
                    break
                self.next()
        limit, offset = None, 0
        if self.is_kw("limit"):
            self.next()
            limit = self.integer()
        if self.is_kw("offset"):
            self.next()
            offset = self.integer()
        if self.peek().kind != "end":
            raise self.unexpected(self.peek())
        return Query(obj, columns, count, where, order, limit, offset)

    def name_token(self, path: bool = False) -> _Tok:
        """A field name; with ``path``, a relationship path too (the field list)."""
        tok = self.next()
        if tok.kind != "word" or tok.text.lower() in KEYWORDS - {"first", "last"} or _NUMBER.match(tok.text):
            raise self.unexpected(tok)
        if "." in tok.text and not (path and all(tok.text.split("."))):
            raise self.error("MALFORMED_QUERY", f"relationship field '{tok.text}' {FAKE}", tok.pos)
        if self.peek().text == "(":
            raise self.error("MALFORMED_QUERY", f"function '{tok.text}()' {FAKE}", tok.pos)
        return tok

    def column(self, obj: SfObject, tok: _Tok) -> Column:
        *relations, name = tok.text.split(".")
        hops: list[tuple[SfField, str]] = []
        for relation in relations:
            lookup = next((f for f in obj.fields.values() if f.relationship_name is not None
                           and f.relationship_name.lower() == relation.lower()), None)
            target = next((o for o in map(self.resolve, lookup.reference_to) if o is not None), None) \
                if lookup is not None else None
            if lookup is None or lookup.relationship_name is None or target is None:
                raise self.error("INVALID_FIELD", INVALID_RELATIONSHIP.format(relation), tok.pos)
            hops.append((lookup, lookup.relationship_name))
            obj = target
        f = obj.field(name)
        if f is None:
            raise self.error("INVALID_FIELD", INVALID_FIELD.format(name, obj.name), tok.pos)
        return Column(tuple(hops), f)

    def field(self, obj: SfObject, tok: _Tok) -> SfField:
        f = obj.field(tok.text)
        if f is None:
            raise self.error("INVALID_FIELD", INVALID_FIELD.format(tok.text, obj.name), tok.pos)
        return f

    def integer(self) -> int:
        tok = self.next()
        if tok.kind != "word" or not tok.text.isdigit():
            raise self.unexpected(tok)
        return int(tok.text)

    def condition(self, obj: SfObject) -> Pred:
        terms = [self.term(obj)]
        joiner: str | None = None
        while self.is_kw("and", "or"):
            tok = self.next()
            if joiner is not None and tok.text.lower() != joiner:
                raise self.unexpected(tok)  # SOQL needs parentheses to mix AND and OR
            joiner = tok.text.lower()
            terms.append(self.term(obj))
        if len(terms) == 1:
            return terms[0]
        if joiner == "and":
            return lambda r: all(t(r) for t in terms)
        return lambda r: any(t(r) for t in terms)

    def term(self, obj: SfObject) -> Pred:
        if self.is_kw("not"):
            self.next()
            inner = self.term(obj)
            return lambda r: not inner(r)
        if self.peek().text == "(":
            self.next()
            pred = self.condition(obj)
            self.expect(")")
            return pred
        f = self.field(obj, self.name_token())
        if self.is_kw("not", "in"):
            negate = self.next().text.lower() == "not"
            if negate:
                self.expect_kw("in")
            self.expect("(")
            values = [self.value(f)]
            while self.peek().text == ",":
                self.next()
                values.append(self.value(f))
            self.expect(")")
            return lambda r: negate != any(_compare(f, r.get(f.name), "=", v) for v in values)
        if self.is_kw("like"):
            self.next()
            tok = self.peek()
            pattern = self.value(f)
            if not isinstance(pattern, str):
                raise self.error("MALFORMED_QUERY", "invalid operator on field: LIKE requires a string", tok.pos)
            regex = _like(pattern)
            return lambda r: isinstance(r.get(f.name), str) and regex.match(r[f.name]) is not None
        op_tok = self.next()
        if op_tok.kind != "op":
            raise self.unexpected(op_tok)
        op = "!=" if op_tok.text == "<>" else op_tok.text
        value = self.value(f)
        return lambda r: _compare(f, r.get(f.name), op, value)

    def value(self, f: SfField) -> Any:
        """A literal, checked against the field's type as Salesforce does."""
        tok = self.next()
        low = tok.text.lower()
        if tok.kind == "str":
            text = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), tok.text[1:-1])
            if f.type not in TEXT_TYPES:
                raise self.type_error(f, tok)
            if f.type in ("id", "reference") and normalize_id(text) is None and "%" not in text:
                raise self.error("INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {text}", tok.pos)
            return text
        if tok.kind != "word":
            raise self.unexpected(tok)
        if low == "null":
            return None
        if low in ("true", "false"):
            if f.type != "boolean":
                raise self.type_error(f, tok)
            return low == "true"
        if _NUMBER.match(tok.text):
            if f.type not in NUMBER_TYPES:
                raise self.type_error(f, tok)
            return float(tok.text)
        constant = _DATE_CONSTANT.match(tok.text)
        if constant:
            if f.type not in ("date", "datetime"):
                raise self.type_error(f, tok)
            return self.date_range(constant)
        if f.type == "date" and (day := parse_date(tok.text)) is not None:
            return day
        if f.type == "datetime" and "T" in tok.text and (moment := parse_datetime(tok.text)) is not None:
            return moment
        if f.type in ("date", "datetime") or f.type in TEXT_TYPES:
            raise self.type_error(f, tok)
        raise self.unexpected(tok)

    def date_range(self, m: re.Match[str]) -> _Range:
        word, n = m.group(1).upper(), int(m.group(3) or 0)
        one = timedelta(days=1)
        if word == "TODAY":
            return _Range(self.today, self.today + one)
        if word == "YESTERDAY":
            return _Range(self.today - one, self.today)
        if word == "TOMORROW":
            return _Range(self.today + one, self.today + 2 * one)
        if word.startswith("LAST"):
            return _Range(self.today - n * one, self.today + one)  # the last n days and today, as documented
        return _Range(self.today + one, self.today + (n + 1) * one)

    def type_error(self, f: SfField, tok: _Tok) -> SoqlError:
        if f.type in TEXT_TYPES:
            wanted, quoted = "string", "should be enclosed in quotes"
        else:
            wanted = {"int": "integer", "datetime": "dateTime"}.get(f.type, f.type)
            wanted = "double" if f.type in ("currency", "percent") else wanted
            quoted = "should not be enclosed in quotes"
        return self.error("INVALID_FIELD", f"value of filter criterion for field '{f.name}' must be of type "
                          f"{wanted} and {quoted}", tok.pos)


def parse(text: str, resolve: Callable[[str], SfObject | None], today: date) -> Query:
    """The query, or a :class:`SoqlError` (HTTP 400) as Salesforce words it."""
    return _Parser(text, resolve, today).parse()


def _like(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out += re.escape(pattern[i + 1])
            i += 2
            continue
        out += ".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
        i += 1
    return re.compile(out + r"\Z", re.IGNORECASE | re.DOTALL)


def _typed(f: SfField, value: Any) -> Any:
    """A stored value as it compares: folded text, numbers, dates, aware datetimes."""
    if value is None:
        return None
    if f.type in TEXT_TYPES:
        return normalize_id(value) or value if f.type in ("id", "reference") else str(value).lower()
    if f.type == "date":
        return parse_date(value) if isinstance(value, str) else value
    if f.type == "datetime":
        return parse_datetime(value) if isinstance(value, str) else value
    return value


def _compare(f: SfField, stored: Any, op: str, literal: Any) -> bool:
    have = _typed(f, stored)
    if isinstance(literal, _Range):
        if have is None:
            return op == "!="
        day = have.date() if isinstance(have, datetime) else have
        inside = literal.start <= day < literal.end
        return {"=": inside, "!=": not inside, "<": day < literal.start, "<=": day < literal.end,
                ">": day >= literal.end, ">=": day >= literal.start}[op]
    want = _typed(f, literal) if isinstance(literal, str) else literal
    if op == "=":
        return have == want
    if op == "!=":
        return have != want
    if have is None or want is None:
        return False
    try:
        return bool({"<": have < want, "<=": have <= want, ">": have > want, ">=": have >= want}[op])
    except TypeError:
        return False


def _sorter(f: SfField) -> Callable[[Row], Any]:
    return lambda row: _typed(f, row.get(f.name))
