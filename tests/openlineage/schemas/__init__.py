"""Validate an emitted OpenLineage event against the vendored specification (README.md here says whence)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json"


@cache
def _registry() -> Any:
    from referencing import Registry, Resource

    resources = []
    for path in sorted(HERE.glob("*.json")):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


def _validate(instance: Any, ref: str) -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator({"$ref": ref}, registry=_registry()).validate(instance)


def _facets(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [*event["run"].get("facets", {}).items(), *event["job"].get("facets", {}).items()]
    for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
        for key in ("facets", "inputFacets", "outputFacets"):
            found += list((dataset.get(key) or {}).items())
    return found


def validate_event(event: dict[str, Any]) -> list[str]:
    """The event against ``RunEvent``, and each facet against its own schema when it is a standard facet
    (``_schemaURL`` under openlineage.io/spec/facets): raises ``jsonschema.ValidationError``. Returns the
    facets with a schema of their own elsewhere (the Airflow provider's), checked as base facets only."""
    _validate(event, f"{EVENT}#/$defs/RunEvent")
    other = []
    for name, facet in _facets(event):
        url = facet.get("_schemaURL", "")
        base, _, fragment = url.partition("#")
        if base in _registry():
            _validate(facet, url if fragment else base)
        else:
            other.append(name)
    return other
