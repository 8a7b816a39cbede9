"""Recognise Jinja in spec values, so parse-time validation can tell templating from mistakes."""

from __future__ import annotations

import re
from typing import Any

from airflow_opsflow.core.text import cut

_JINJA = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)


def has_jinja(text: object) -> bool:
    return isinstance(text, str) and ("{{" in text or "{%" in text or "{#" in text)


def has_jinja_anywhere(value: object) -> bool:
    """Whether a string, or any string inside nested lists and dicts, holds Jinja."""
    return any(has_jinja(s) for _, s in _strings(value, ""))


PLACEHOLDER = "opsflow_jinja"


def with_placeholders(text: str) -> str:
    """Replace each Jinja expression by a placeholder (a valid identifier and string) so the rest of
    the spec can be validated before rendering."""
    return _JINJA.sub(PLACEHOLDER, text)


def with_placeholders_anywhere(value: Any) -> Any:
    """:func:`with_placeholders` on a string and on the strings inside nested lists and dicts (as
    Airflow renders them); other values are returned as they are."""
    if isinstance(value, str):
        return with_placeholders(value) if has_jinja(value) else value
    if isinstance(value, dict):
        return {k: with_placeholders_anywhere(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(with_placeholders_anywhere(v) for v in value)
    return value


def caused_by_placeholder(inputs: list[object]) -> bool:
    """Whether a validation error may come from a placeholder rather than from the spec itself."""
    return any(PLACEHOLDER in repr(i) for i in inputs)


def template_errors(value: Any, field: str, env: Any = None) -> list[str]:
    """Jinja syntax errors (``'{{ a'``, an unclosed ``{% if %}``) in a template field's strings, each
    naming the field (and the place inside it), parsed as Airflow will render them: with ``env`` (the
    task's template environment) or a sandboxed one with Airflow's default extensions."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    if env is None:
        env = SandboxedEnvironment(extensions=["jinja2.ext.do"])
    problems = []
    for where, text in _strings(value, field):
        if not _maybe_jinja(text):
            continue
        try:
            env.parse(text)
        except jinja2.TemplateSyntaxError as e:
            line = f" (line {e.lineno})" if e.lineno and "\n" in text else ""
            problems.append(f"field {where!r}: broken Jinja template{line}: {e.message}; got {cut(text, 80, '...')!r}")
        except RecursionError:
            problems.append(f"field {where!r}: the Jinja template nests too deeply")
    return problems


def _maybe_jinja(text: str) -> bool:
    # Any opening or closing delimiter: a lone '}}' or '%}' is an error as much as a lone '{{'.
    return any(d in text for d in ("{{", "{%", "{#", "}}", "%}", "#}"))


def _strings(value: Any, where: str, depth: int = 0) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)]
    if depth > 60:
        return []  # the loader refuses such nesting with its own message
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            found += _strings(v, f"{where}.{k}" if where else str(k), depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found += _strings(v, f"{where}[{i}]", depth + 1)
    return found
