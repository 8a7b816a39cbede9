"""What user-written SQL in a check spec may do: read, and nothing else.

A check runs in a read-only transaction, but read-only only stops writes to the tables of that
transaction. Functions reach further: they end other sessions, change settings for the statements
that follow (the statement timeout included), open a second connection whose writes are committed,
read and write the server's files, take locks others wait on, advance sequences. Privileges can stop
most of them, and a least-privilege role for checks should be used, but a check spec is
reviewed like code and a refusal at DAG parse time is cheaper than an incident. So the SQL texts of a
spec (``where``, ``expression``, ``sql``, ``metric``, reconcile queries) are parsed with sqlglot and:

* a condition (``where``, ``expression``) must be exactly one boolean expression, a query (``sql``)
  exactly one ``SELECT``/``WITH ... SELECT``: no second statement, no DML or DDL anywhere (not even
  in a ``WITH``), no ``SELECT ... INTO``, no ``FOR UPDATE``/``FOR SHARE``, no ``INTO OUTFILE``;
* no function of the families below is called, in the connection's dialect (all families when the
  dialect is not known, as at DAG parse without ``dialect=``).

Sleeping (``pg_sleep``, ``SLEEP``, ``BENCHMARK``) is not refused: it has no effect outside the query
and the statement timeout bounds it. A user-defined function can still do anything its owner can:
that is what the least-privilege role is for.

Someone who knows what they do allows a function by name with ``allow_functions=["set_config"]`` on
DataCheckOperator / DataConditionSensor.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from airflow_opsflow.core import sqlparts
from airflow_opsflow.core.sqlparts import SqlFragmentError


@dataclass(frozen=True)
class Family:
    """Functions refused together, for one reason."""

    dialects: frozenset[str]  # sqlglot dialects that have them (empty: every dialect)
    patterns: tuple[str, ...]  # lower-case names, ``*`` wildcards; ``pkg.*`` matches qualified calls
    why: str


_PG = frozenset({"postgres", "redshift"})
_MYSQL = frozenset({"mysql"})
_SQLITE = frozenset({"sqlite"})

FAMILIES: dict[str, Family] = {
    "sessions and server": Family(_PG, (
        "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile*", "pg_switch_wal",
        "pg_switch_xlog", "pg_promote", "pg_*backup*", "pg_create_restore_point", "pg_wal_replay_*",
        "pg_xlog_replay_*", "pg_log_backend_memory_contexts", "pg_stat_reset*", "pg_import_system_collations",
        "pg_truncate_visibility_map", "pg_stat_statements_reset",
    ), "end other sessions, reload or reconfigure the server, reset statistics"),
    "settings": Family(_PG, ("set_config",),
                       "changes a setting for the rest of the transaction: the statement timeout, the search "
                       "path, read-only mode itself"),
    "second connections": Family(_PG, ("dblink*", "pg_background_*"),
                                 "open a connection outside the read-only transaction, whose writes are "
                                 "committed"),
    "server files": Family(_PG, (
        "pg_read_file", "pg_read_binary_file", "pg_ls_*", "pg_stat_file", "pg_file_*", "lo_*",
    ), "read or write the database server's files (large objects copy files in and out)"),
    "dynamic SQL": Family(_PG, ("query_to_xml*", "cursor_to_xml*", "ts_stat"),
                          "run a query given as text, which no check of the spec can see"),
    "locks and notifications": Family(_PG, ("pg_*advisory*", "pg_notify"),
                                      "take locks other sessions wait on, or wake up listeners"),
    "transaction ids": Family(_PG, ("txid_current", "pg_current_xact_id"),
                              "assign a transaction id to a read-only check (it consumes xids toward "
                              "wraparound and nothing in a check needs one)"),
    "replication": Family(_PG, ("pg_*replication_slot*", "pg_logical_*", "pg_replication_origin_*"),
                          "create, drop or consume replication slots: a logical decoding consumer loses "
                          "the changes a check consumed"),
    "sequences": Family(frozenset(), ("nextval", "setval"),
                        "advance or set a sequence: the ids it skips are gone for good"),
    "mysql files": Family(_MYSQL, ("load_file",), "reads a file of the database server"),
    "mysql locks": Family(_MYSQL, ("get_lock", "release_lock", "release_all_locks"),
                          "take or release named locks other sessions wait on"),
    "mysql shell": Family(_MYSQL, ("sys_exec", "sys_eval", "sys_get", "sys_set"),
                          "lib_mysqludf_sys functions run shell commands on the server"),
    "sqlite native code and files": Family(_SQLITE, (
        "load_extension", "writefile", "readfile", "edit", "fsdir", "fts3_tokenizer",
    ), "load native code, read or write files, open an editor, or pass raw pointers"),
    "remote sources": Family(frozenset({"tsql"}), ("openrowset", "opendatasource", "openquery"),
                             "read files or run queries on other servers"),
    "oracle packages": Family(frozenset({"oracle"}), (
        "utl_http.*", "utl_file.*", "utl_tcp.*", "utl_smtp.*", "utl_inaddr.*", "dbms_pipe.*", "dbms_scheduler.*",
        "dbms_sql.*", "dbms_lock.*",
    ), "reach the network or the file system, run dynamic SQL, take locks"),
    "snowflake system functions": Family(frozenset({"snowflake"}), ("system$cancel*", "system$abort*"),
                                         "cancel other queries or sessions"),
    "duckdb files": Family(frozenset({"duckdb"}), (
        "read_csv*", "read_json*", "read_ndjson*", "read_parquet", "parquet_scan", "read_text", "read_blob",
        "glob", "sniff_csv",
    ), "read local or remote files"),
}
_ALL_DIALECTS = frozenset().union(*(f.dialects for f in FAMILIES.values()))

# Nodes that are statements or make a query something else than a read.
_NOT_A_READ: tuple[type[exp.Expr], ...] = (
    exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Into, exp.Lock, exp.Command, exp.Create, exp.Drop,
    exp.Alter, exp.TruncateTable, exp.Set, exp.Transaction, exp.Commit, exp.Rollback, exp.Copy, exp.Use,
    exp.Grant, exp.Pragma, exp.LoadData, exp.Cache, exp.Uncache, exp.Refresh,
)
_INTO_FILE = re.compile(r"\binto\s+(outfile|dumpfile)\b", re.IGNORECASE)
# Tried in turn when the dialect is not known (their quoting and operators differ). Not the permissive
# ones: Snowflake reads "25:00" as a path into a variant; pass dialect= to parse in those.
FALLBACK_DIALECTS = ("", "postgres", "mysql", "sqlite")


class UnsafeSqlError(SqlFragmentError):
    """User SQL that is well formed but would do more than read."""


def families_for(dialect: str | None) -> list[Family]:
    """The families refused on ``dialect``: its own and the universal ones; every family when the
    dialect is unknown (None) or none of them names it."""
    if not dialect or dialect not in _ALL_DIALECTS:
        return list(FAMILIES.values())
    return [f for f in FAMILIES.values() if not f.dialects or dialect in f.dialects]


def refused_calls(tree: exp.Expr, dialect: str | None, allow: Collection[str] = ()) -> list[str]:
    """``name (why)`` for each refused function ``tree`` calls, allowed names aside."""
    allowed = {a.strip().lower() for a in allow}
    families = families_for(dialect)
    found: dict[str, str] = {}
    for node in tree.walk():
        for name in _call_names(node):
            if name in allowed or name.rsplit(".", 1)[-1] in allowed:
                continue
            for family in families:
                if any(fnmatch.fnmatchcase(name, p) for p in family.patterns):
                    found.setdefault(name, family.why)
    return [f"{name} ({why})" for name, why in found.items()]


def _call_names(node: exp.Expr) -> list[str]:
    """The names a function call goes by (``pg_catalog.set_config`` -> both qualified and bare)."""
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
    elif isinstance(node, exp.NextValueFor):
        return ["nextval"]
    elif isinstance(node, exp.Column) and node.table and node.name.lower() == "nextval":
        return ["nextval"]  # Oracle/Snowflake: seq.NEXTVAL
    elif isinstance(node, exp.Func):
        return [n.lower() for n in type(node).sql_names()]
    else:
        return []
    parent = node.parent
    if isinstance(parent, exp.Dot) and parent.expression is node:
        qualifier = re.sub(r'["`\[\]]', "", parent.this.sql()).lower()
        if qualifier:
            return [f"{qualifier}.{name}", name]
    return [name]


def check_condition(text: str, dialect: str | None, allow: Collection[str] = ()) -> exp.Expr:
    """One boolean condition that only reads; raises :class:`SqlFragmentError`."""
    return _checked(lambda d: sqlparts.condition(text, d, "the condition"), text, dialect, allow)


def check_query(text: str, dialect: str | None, allow: Collection[str] = ()) -> exp.Expr:
    """One ``SELECT``/``WITH ... SELECT`` that only reads; raises :class:`SqlFragmentError`."""
    if _INTO_FILE.search(text):
        raise UnsafeSqlError("the query writes a file (INTO OUTFILE/DUMPFILE): a check only reads")
    return _checked(lambda d: _query(text, d), text, dialect, allow)


def check_aggregate(text: str, dialect: str | None, allow: Collection[str] = ()) -> exp.Expr:
    """A metric: one aggregate expression over the table's rows, no subquery, only reading."""
    return _checked(lambda d: sqlparts.aggregate(text, d), text, dialect, allow)


def check_table(name: str, dialect: str | None) -> None:
    """A table name that builds (``a..b`` does not)."""
    sqlparts.table_ref(name, dialect or "")


def _query(text: str, dialect: str) -> exp.Expr:
    try:
        return sqlparts.query(text, dialect, "the query")
    except SqlFragmentError:
        # Say what makes it more than a read when sqlglot can tell (sqlparts says "not a SELECT").
        try:
            statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
        except SqlglotError:
            statements = []
        if len(statements) == 1:
            _refuse_writes(statements[0])
        raise


def _refuse_writes(tree: exp.Expr) -> None:
    bad = next((n for n in tree.walk() if isinstance(n, _NOT_A_READ)), None)
    if bad is not None:
        what = "FOR UPDATE/SHARE" if isinstance(bad, exp.Lock) else "SELECT ... INTO" if isinstance(
            bad, exp.Into) else bad.key.upper()
        raise UnsafeSqlError(f"{what} is not allowed: a check only reads")


def _checked(parse: Callable[[str], exp.Expr], text: str, dialect: str | None, allow: Collection[str]) -> exp.Expr:
    if "\x00" in text:
        raise SqlFragmentError("the SQL contains a NUL character")
    tree = _parse(parse, dialect)
    _refuse_writes(tree)
    refused = refused_calls(tree, dialect, allow)
    if refused:
        raise UnsafeSqlError(f"calls refused function(s): {'; '.join(refused)}. A check only reads; "
                             f"allow_functions=[...] on the operator lifts this for a function you trust")
    return tree


def _parse(parse: Callable[[str], exp.Expr], dialect: str | None) -> exp.Expr:
    """Parse in ``dialect``; without one, in the first of the common dialects that accepts the text, then
    in any other dialect sqlglot knows (Snowflake's ``payload:id``, T-SQL's ``TOP``): nothing valid on the
    real connection is refused at parse, and the run parses it again in the connection's own dialect.
    Text no dialect reads is refused with the generic dialect's error."""
    if dialect:
        return _guarded(parse, dialect)
    first: SqlFragmentError | None = None
    for candidate in (*FALLBACK_DIALECTS, *_other_dialects()):
        try:
            tree = _guarded(parse, candidate)
        except UnsafeSqlError:
            raise
        except SqlFragmentError as e:
            first = first or e
            continue
        # A permissive dialect reads almost anything ("25:00" is a Snowflake path on 25): accept its reading
        # only when it reads data, a column or a table.
        if candidate in FALLBACK_DIALECTS or tree.find(exp.Column, exp.Table) is not None:
            return tree
    assert first is not None
    raise SqlFragmentError(f"{first} [no SQL dialect reads it]") from None


def _other_dialects() -> list[str]:
    from sqlglot.dialects.dialect import Dialects

    # prql and dax are not SQL; tried last, only for text the common dialects refuse.
    return [d.value for d in Dialects if d.value not in (*FALLBACK_DIALECTS, "prql", "dax")]


def _guarded(parse: Callable[[str], exp.Expr], dialect: str) -> exp.Expr:
    try:
        return parse(dialect)
    except SqlFragmentError:
        raise
    except (SqlglotError, RecursionError, ValueError, TypeError) as e:  # sqlglot on pathological input
        raise SqlFragmentError(f"cannot be parsed as SQL ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
                               if str(e) else f"cannot be parsed as SQL ({type(e).__name__})") from None
