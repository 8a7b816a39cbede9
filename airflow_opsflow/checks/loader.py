"""Build a validated :class:`Suite` from Python objects, dicts or YAML, with errors that name the
check and the field at fault."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from airflow_opsflow.checks.spec import CHECK_KINDS, CheckBase, Suite


class CheckSpecError(ValueError):
    """A check spec is invalid. ``where`` says which suite/task it belongs to."""

    def __init__(self, problems: list[str], where: str = "", inputs: list[object] | None = None) -> None:
        self.problems = problems
        self.where = where
        self.inputs = inputs or []  # the offending values, when known
        head = f"invalid check spec{f' in {where}' if where else ''}"
        super().__init__(head + ":\n  - " + "\n  - ".join(problems))


def load_suite(
    spec: Any,
    *,
    table: str | None = None,
    where: str | None = None,
    context: str = "",
) -> Suite:
    """Validate ``spec`` and return a :class:`Suite`.

    :param spec: a ``Suite``, ``TableChecks``, a list of checks (dicts or models), a dict with
        ``checks`` (one table) or ``tables`` (several), YAML text, or a path to a ``.yml``/``.yaml`` file.
    :param table: default table for a single-table spec that names none.
    :param where: filter for a single-table spec, combined with the spec's own ``where``.
    :param context: where the spec comes from (``"dag 'x', task 'y'"``), for error messages.
    """
    raw = _to_plain(spec, context)
    if isinstance(raw, list):
        raw = {"checks": raw}
    if not isinstance(raw, dict):
        raise CheckSpecError([f"expected a mapping or a list of checks, got {type(raw).__name__}"], context)
    if "tables" not in raw:
        raw = {"tables": [raw]}
    if table or where:
        raw = _with_operator_defaults(raw, table, where, context)
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as e:
        raise CheckSpecError(_describe(e, raw), context, [err.get("input") for err in e.errors()]) from None
    return _name_and_verify(suite, context)


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
        return _from_yaml(spec.read_text(), context)
    if isinstance(spec, Mapping):
        return {k: _to_plain(v, context) if isinstance(v, (BaseModel, list)) else v for k, v in spec.items()}
    if isinstance(spec, Sequence):
        return [_to_plain(v, context) if isinstance(v, BaseModel) else v for v in spec]
    return spec


def _from_yaml(text: str, context: str) -> Any:
    import yaml

    if "\n" not in text and text.strip().endswith((".yml", ".yaml")):
        path = Path(text.strip())
        if not path.is_file():
            raise CheckSpecError([f"check file {text.strip()!r} not found"], context)
        text = path.read_text()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CheckSpecError([f"YAML error: {e}"], context) from None


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
                where.append(f"table {name!r}" if name else f"table group #{index + 1}")
                i += 2
            elif part == "checks" and isinstance(index, int):
                node = _index(node, "checks", index)
                label = f"check #{index + 1}"
                if isinstance(node, dict):
                    if node.get("name"):
                        label = f"check {node['name']!r}"
                    if node.get("kind"):
                        label += f" ({node['kind']})"
                where.append(label)
                i += 2
                if i < len(loc) and loc[i] in CHECK_KINDS:
                    i += 1  # the discriminator tag pydantic inserts
            else:
                break
        field = ".".join("columns" if p == "columns_" else str(p) for p in loc[i:] if p != "function-after")
        msg = err["msg"]
        if err["type"] == "union_tag_invalid":
            msg = f"unknown check kind {err['input'].get('kind')!r}; expected one of: {', '.join(CHECK_KINDS)}"
            field = "kind"
        elif err["type"] == "union_tag_not_found":
            msg, field = "missing 'kind'; expected one of: " + ", ".join(CHECK_KINDS), "kind"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        msg = msg.removeprefix("Value error, ")
        prefix = ", ".join(where)
        problems.append(f"{prefix + ': ' if prefix else ''}{f'field {field!r}: ' if field else ''}{msg}")
    return problems


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
    return Suite.model_construct(tables=tables)


def checks_of(suite: Suite) -> list[CheckBase]:
    return [c for _, c in suite.all_checks()]
