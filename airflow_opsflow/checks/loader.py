"""Build a validated :class:`Suite` from Python objects, dicts or YAML, with errors that name the
check and the field at fault."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from airflow_opsflow.checks.monitor_spec import MetricCheck, ReconcileCheck
from airflow_opsflow.checks.spec import CHECK_KINDS, CheckBase, ExpressionCheck, ForeignKeyCheck, SqlCheck, Suite
from airflow_opsflow.core.jinja import PLACEHOLDER

# Far beyond any real spec; deeper or bigger input (YAML anchors can multiply it) is refused before
# anything walks it recursively.
MAX_DEPTH = 32
MAX_NODES = 200_000


class CheckSpecError(ValueError):
    """A check spec is invalid. ``where`` says which suite/task it belongs to."""

    def __init__(self, problems: list[str], where: str = "", inputs: list[object] | None = None) -> None:
        self.problems = problems
        self.where = where
        self.inputs = inputs or []  # the offending values, one per problem when known
        head = f"invalid check spec{f' in {where}' if where else ''}"
        super().__init__(head + ":\n  - " + "\n  - ".join(problems))

    def only_placeholders(self) -> bool:
        """Whether every problem may come from a Jinja placeholder (so it waits for the rendered spec)."""
        return len(self.inputs) == len(self.problems) and all(PLACEHOLDER in _safe_repr(i) for i in self.inputs)


def load_suite(
    spec: Any,
    *,
    table: str | None = None,
    where: str | None = None,
    context: str = "",
    dialect: str | None = None,
    allow_functions: Collection[str] = (),
    dialect_of_conn: Callable[[str], str] | None = None,
) -> Suite:
    """Validate ``spec`` and return a :class:`Suite`.

    :param spec: a ``Suite``, ``TableChecks``, a list of checks (dicts or models), a dict with
        ``checks`` (one table) or ``tables`` (several), YAML text, or a path to a ``.yml``/``.yaml`` file.
    :param table: default table for a single-table spec that names none.
    :param where: filter for a single-table spec, combined with the spec's own ``where``.
    :param context: where the spec comes from (``"dag 'x', task 'y'"``), for error messages.
    :param dialect: the connection's sqlglot dialect, which its SQL texts are parsed in (None: any of the
        common dialects, with every refused function family: see :mod:`.sql_safety`).
    :param allow_functions: functions :mod:`.sql_safety` would refuse, allowed by name.
    :param dialect_of_conn: the dialect of a reconcile side's own ``conn_id`` (default: ``dialect``).

    Every problem raises :class:`CheckSpecError`, never another exception.
    """
    try:
        return _load(spec, table, where, context, dialect, allow_functions, dialect_of_conn)
    except CheckSpecError:
        raise
    except (RecursionError, OverflowError, ValueError, TypeError, UnicodeError) as e:
        # A last resort: each known case has its own message above; this one still names the place.
        raise CheckSpecError([f"cannot validate the spec ({type(e).__name__}: {str(e)[:200]})"], context) from None


def _load(spec: Any, table: str | None, where: str | None, context: str, dialect: str | None,
          allow_functions: Collection[str], dialect_of_conn: Callable[[str], str] | None) -> Suite:
    raw = _to_plain(spec, context)
    _check_size(raw, context)
    if isinstance(raw, list):
        raw = {"checks": raw}
    if not isinstance(raw, dict):
        raise CheckSpecError([f"expected a mapping or a list of checks, got {type(raw).__name__}"], context)
    allowed = raw.get("allow_functions")  # the spec's own opt-out (a dumped spec carries its operator's)
    if "tables" not in raw:
        raw = {k: v for k, v in raw.items() if k != "allow_functions"}
        raw = {"tables": [raw], **({"allow_functions": allowed} if allowed is not None else {})}
    if table or where:
        raw = _with_operator_defaults(raw, table, where, context)
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as e:
        raise CheckSpecError(_describe(e, raw), context, [err.get("input") for err in e.errors()]) from None
    suite = _name_and_verify(suite, context)
    verify_sql(suite, dialect, context, [*allow_functions, *suite.allow_functions], dialect_of_conn)
    return suite


def verify_sql(
    suite: Suite,
    dialect: str | None,
    context: str = "",
    allow_functions: Collection[str] = (),
    dialect_of_conn: Callable[[str], str] | None = None,
) -> None:
    """Parse every SQL text and table name of ``suite`` in ``dialect`` (see :mod:`.sql_safety`): a
    condition is one condition, a query one read-only query, no refused function. Raises
    :class:`CheckSpecError` naming the table, check and field of each problem."""
    # sqlglot is imported here, not with the module: a DAG file that only imports the operator pays nothing.
    from airflow_opsflow.checks import sql_safety
    from airflow_opsflow.core.sqlparts import SqlFragmentError

    problems: list[str] = []
    inputs: list[object] = []

    def verify(place: str, field: str, text: str | None, how: str, on: str | None = dialect) -> None:
        if text is None:
            return
        try:
            if how == "table":
                sql_safety.check_table(text, on)
            elif how == "condition":
                sql_safety.check_condition(text, on, allow_functions)
            elif how == "query":
                sql_safety.check_query(text, on, allow_functions)
            else:
                sql_safety.check_aggregate(text, on, allow_functions)
        except SqlFragmentError as e:
            problems.append(f"{place}: field {field!r}: {e}")
            # A refusal is never the placeholder's doing; a parse error of a templated text may be.
            inputs.append(None if isinstance(e, sql_safety.UnsafeSqlError) else text)

    for i, group in enumerate(suite.tables):
        where = f"table {group.table!r}" if group.table else f"table group #{i + 1}"
        verify(where, "table", group.table, "table")
        verify(where, "where", group.where, "condition")
        for check in group.checks:
            place = f"{where}, check {check.name!r} ({check.kind})"
            verify(place, "where", check.where, "condition")
            if isinstance(check, ExpressionCheck):
                verify(place, "expression", check.expression, "condition")
            elif isinstance(check, SqlCheck):
                verify(place, "sql", check.sql, "query")
            elif isinstance(check, ForeignKeyCheck):
                verify(place, "to_table", check.to_table, "table")
            elif isinstance(check, MetricCheck):
                verify(place, "sql", check.sql, "query")
                verify(place, "metric", check.metric, "aggregate")
            elif isinstance(check, ReconcileCheck):
                for name, side in (("left", check.left), ("right", check.right)):
                    on = dialect_of_conn(side.conn_id) if side.conn_id and dialect_of_conn else dialect
                    if side.conn_id and dialect_of_conn is None:
                        on = None  # another connection: its dialect is known at run time only
                    verify(place, f"{name}.table", side.table, "table", on)
                    verify(place, f"{name}.where", side.where, "condition", on)
                    verify(place, f"{name}.sql", side.sql, "query", on)
    if problems:
        raise CheckSpecError(problems, context, inputs)


def _with_operator_defaults(raw: dict[str, Any], table: str | None, where: str | None, context: str) -> Any:
    """The operator's ``table`` and ``where`` apply to a spec of exactly one table."""
    groups = raw.get("tables")
    if not (isinstance(groups, list) and len(groups) == 1 and isinstance(groups[0], dict)):
        given = "/".join(n for n, v in (("table", table), ("where", where)) if v)
        raise CheckSpecError([f"{given} given to the operator, but the spec does not describe exactly one "
                              "table: put it on the table in the spec"], context)
    group = dict(groups[0])
    if table:
        if group.get("table") and group["table"] != table:
            raise CheckSpecError([f"table {table!r} given to the operator but the spec names {group['table']!r}"],
                                 context)
        group["table"] = table
    if where:
        group["where"] = f"({group['where']}) AND ({where})" if group.get("where") else where
    return {**raw, "tables": [group]}


def _to_plain(spec: Any, context: str) -> Any:
    if isinstance(spec, BaseModel):
        return spec.model_dump(by_alias=True, exclude_none=True)
    if isinstance(spec, str):
        return _from_yaml(spec, context)
    if isinstance(spec, Path):
        return _from_yaml(_read(spec, context), context)
    if isinstance(spec, Mapping):
        return {k: _to_plain(v, context) if isinstance(v, (BaseModel, list)) else v for k, v in spec.items()}
    if isinstance(spec, Sequence):
        return [_to_plain(v, context) if isinstance(v, BaseModel) else v for v in spec]
    return spec


def _read(path: Path, context: str) -> str:
    if not path.is_file():
        raise CheckSpecError([f"check file {str(path)!r} not found"], context)
    try:
        return path.read_text()
    except (OSError, UnicodeError) as e:
        raise CheckSpecError([f"check file {str(path)!r} cannot be read: {e}"], context) from None


def _from_yaml(text: str, context: str) -> Any:
    import yaml

    if "\n" not in text and text.strip().endswith((".yml", ".yaml")):
        text = _read(Path(text.strip()), context)
    try:
        return yaml.load(text, Loader=_spec_loader())  # a SafeLoader subclass
    except yaml.YAMLError as e:
        raise CheckSpecError([f"YAML error: {e}"], context) from None
    except RecursionError:
        raise CheckSpecError([f"YAML error: the document nests deeper than {MAX_DEPTH} levels"], context) from None
    except (ValueError, OverflowError) as e:  # e.g. an integer beyond Python's 4,300-digit conversion limit
        why = "an integer has more than 4,300 digits" if "digits" in str(e) else str(e)[:120]
        raise CheckSpecError([f"YAML error: a value cannot be read ({why})"], context) from None


_LOADER: Any = None


def _spec_loader() -> Any:
    """A SafeLoader that refuses duplicate keys (YAML keeps the last one silently) and reads
    ``6:00``/``25:00`` as text, not as YAML 1.1's base-60 integers (``25:00`` would be 1500)."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import re

    import yaml
    from yaml.composer import ComposerError
    from yaml.constructor import ConstructorError

    class SpecLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            # Stop deep nesting here, before recursion does (hitting Python's limit takes seconds).
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH + 1:
                    raise ComposerError(None, None, f"the document nests deeper than {MAX_DEPTH} levels",
                                        self.peek_event().start_mark)
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue  # '<<: *defaults' then overriding a key is what merge keys are for
                    try:
                        key = self.construct_object(key_node, deep=True)
                        hash(key)
                    except (TypeError, ConstructorError):
                        continue  # SafeLoader reports unhashable keys itself
                    line = key_node.start_mark.line + 1
                    if key in seen:
                        raise ConstructorError(None, None, f"duplicate key {key!r} (line {line}; first on line "
                                                           f"{seen[key]}): YAML would keep only the last one",
                                               key_node.start_mark)
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    resolvers: dict[Any, list[Any]] = {}
    for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items():
        resolvers[first] = [(tag, regexp) for tag, regexp in entries if tag not in _REDEFINED]
    SpecLoader.yaml_implicit_resolvers = resolvers
    # YAML 1.2's booleans: only true/false. "yes"/"no"/"on"/"off" stay text, so `values: [yes, no]` checks a
    # text column instead of turning into [True, False]; boolean fields still read them (pydantic does).
    SpecLoader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
    # YAML 1.1's int and float forms, without the base-60 ones ("190:20:30").
    SpecLoader.add_implicit_resolver(
        "tag:yaml.org,2002:int",
        re.compile(r"""^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$""", re.X),
        list("-+0123456789"))
    SpecLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."))
    _LOADER = SpecLoader
    return SpecLoader


_REDEFINED = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool")


def _check_size(raw: Any, context: str) -> None:
    """Refuse input nested deeper than :data:`MAX_DEPTH` or larger than :data:`MAX_NODES` (iteratively:
    recursion is what such input breaks)."""
    stack: list[tuple[Any, int]] = [(raw, 0)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise CheckSpecError([f"the spec nests deeper than {MAX_DEPTH} levels"], context)
        if nodes > MAX_NODES:
            raise CheckSpecError([f"the spec has more than {MAX_NODES:,} values"], context)
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
            stack.extend((k, depth + 1) for k in node)
        elif isinstance(node, (list, tuple)):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, str) and len(node) > 1_000_000:
            raise CheckSpecError([f"a value of the spec is {len(node):,} characters long"], context)


def _describe(error: ValidationError, raw: Any) -> list[str]:
    problems = []
    for err in error.errors():
        loc = list(err["loc"])
        where: list[str] = []
        node = raw
        i = 0
        while i < len(loc):
            part = loc[i]
            index = loc[i + 1] if i + 1 < len(loc) else None
            if part == "tables" and isinstance(index, int):
                node = _index(node, "tables", index)
                name = node.get("table") if isinstance(node, dict) else None
                where.append(f"table {_show(name)}" if name else f"table group #{index + 1}")
                i += 2
            elif part == "checks" and isinstance(index, int):
                node = _index(node, "checks", index)
                label = f"check #{index + 1}"
                if isinstance(node, dict):
                    if node.get("name"):
                        label = f"check {_show(node['name'])}"
                    if node.get("kind"):
                        kind = node["kind"]
                        label += f" ({kind if isinstance(kind, str) and len(kind) <= 40 else _show(kind)})"
                where.append(label)
                i += 2
                if i < len(loc) and loc[i] in CHECK_KINDS:
                    i += 1  # the discriminator tag pydantic inserts
            else:
                break
        field = ".".join("columns" if p == "columns_" else _show(p) if not isinstance(p, str) else p[:80]
                         for p in loc[i:] if p != "function-after")
        msg = err["msg"]
        if err["type"] == "union_tag_invalid":
            msg = f"unknown check kind {_show(err['input'].get('kind'))}; expected one of: {', '.join(CHECK_KINDS)}"
            field = "kind"
        elif err["type"] == "union_tag_not_found":
            msg, field = "missing 'kind'; expected one of: " + ", ".join(CHECK_KINDS), "kind"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        msg = msg.removeprefix("Value error, ")
        prefix = ", ".join(where)
        problems.append(f"{prefix + ': ' if prefix else ''}{f'field {field!r}: ' if field else ''}{msg}")
    return problems


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except (ValueError, RecursionError):  # an integer over 4,300 digits, a structure nested too deep
        return f"<a {type(value).__name__} too large to show>"


def _show(value: Any) -> str:
    """A user's value in a message: its repr, cut short."""
    text = _safe_repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _index(node: Any, key: str, i: int) -> Any:
    try:
        return node[key][i]
    except (KeyError, IndexError, TypeError):
        return None


def _name_and_verify(suite: Suite, context: str) -> Suite:
    problems: list[str] = []
    seen: dict[str, int] = {}
    tables = []
    for group in suite.tables:
        checks = []
        for check in group.checks:
            name = check.name or check.default_name()
            if name in seen:
                seen[name] += 1
                if check.name:
                    problems.append(f"check {name!r}: the name is used twice; check names must be unique")
                else:
                    name = f"{name}_{seen[name]}"
            seen.setdefault(name, 1)
            tableless = check.kind in ("sql", "reconcile") or getattr(check, "sql", None) is not None
            if group.table is None and not tableless:
                problems.append(f"check {name!r} ({check.kind}): no table given")
            checks.append(check.model_copy(update={"name": name}) if name != check.name else check)
        tables.append(group.model_copy(update={"checks": checks}))
    if problems:
        raise CheckSpecError(problems, context)
    return Suite.model_construct(tables=tables, allow_functions=suite.allow_functions)


def checks_of(suite: Suite) -> list[CheckBase]:
    return [c for _, c in suite.all_checks()]
