"""Templated objects inside templated fields: alert routes, ticket routes, report deliveries, sync destinations.

Airflow renders an object found in a template field through the object's own ``template_fields``
(``Templater.render_template`` -> ``_render_nested_template_fields``), setting the rendered values on it in
place. That object is the DAG's: shared by every try, map index and run that one process executes
(``dag.test()``, a mapped task's indexes), so a second rendering would see the first one's values. And a
frozen dataclass (every sync destination) refuses the assignment. :class:`NestedTemplates` renders a copy
instead: a shallow copy for a plain object, ``dataclasses.replace`` for a frozen dataclass, which runs its
``__post_init__`` again, so rendered values are validated as literal ones are when the DAG is parsed.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_opsflow.core.jinja import template_errors
from airflow_opsflow.operators.naming import where_am_i

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context

_PLAIN = (str, bytes, int, float, bool, list, tuple, dict, set, frozenset)


class NestedTemplates:
    """Mixin (before ``BaseOperator``) of the operators holding templated objects: see the module."""

    def render_template(self, content: Any, context: Context, jinja_env: jinja2.Environment | None = None,
                        seen_oids: set[int] | None = None) -> Any:
        fields = () if isinstance(content, _PLAIN) else getattr(content, "template_fields", ())
        if not fields or (seen_oids is not None and id(content) in seen_oids):
            return super().render_template(content, context, jinja_env, seen_oids)  # type: ignore[misc]
        params = getattr(content, "__dataclass_params__", None)
        if params is None or not params.frozen:
            return super().render_template(copy.copy(content), context, jinja_env, seen_oids)  # type: ignore[misc]
        oids = seen_oids if seen_oids is not None else set()
        oids.add(id(content))
        changes = {}
        for name in fields:
            value = getattr(content, name)
            if value:  # as Airflow does: empty values are left alone
                rendered = self.render_template(value, context, jinja_env, oids)
                if rendered != value:
                    changes[name] = rendered
        if not changes:
            return content
        try:
            return dataclasses.replace(content, **changes)
        except (ValueError, TypeError) as e:  # the declaration's own check, on the rendered values
            # Name the field at fault: the one whose rendered value alone fails (else all that were rendered).
            culprits = [name for name in changes if _refused(content, name, changes[name])] or sorted(changes)
            raise AirflowFailException(f"{where_am_i(self)}: {type(content).__name__} {', '.join(culprits)} "
                                       f"rendered to an invalid value: {e}") from None


def _refused(declaration: Any, name: str, value: Any) -> bool:
    try:
        dataclasses.replace(declaration, **{name: value})
    except (ValueError, TypeError):
        return True
    return False


def nested_template_errors(objects: Any, label: str, env: Any = None) -> list[str]:
    """Broken Jinja in the template fields of routes or deliveries (a list, each named ``label[i].field``, or
    one object, ``label.field``): found when the DAG is parsed, as for the operator's own fields."""
    named = ([(f"{label}[{i}]", obj) for i, obj in enumerate(objects)] if isinstance(objects, (list, tuple))
             else [(label, objects)])
    return [problem for prefix, obj in named for name in getattr(obj, "template_fields", ())
            for problem in template_errors(getattr(obj, name, None), f"{prefix}.{name}", env)]
