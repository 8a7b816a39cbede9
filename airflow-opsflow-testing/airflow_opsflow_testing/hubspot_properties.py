"""The properties API of :class:`~airflow_opsflow_testing.hubspot_server.FakeHubSpot` (``/crm/v3/properties/{type}``).

``GET`` lists a type's properties, ``GET .../{name}`` reads one (404 ``OBJECT_NOT_FOUND`` when unknown) and
``POST`` creates a custom one from HubSpot's ``PropertyCreate`` (``name``, ``label``, ``type``, ``fieldType``,
``groupName`` required; ``options`` for enumerations; ``hasUniqueValue`` makes it usable as ``idProperty``).
Creating an existing name answers 409 ``OBJECT_ALREADY_EXISTS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_opsflow_testing.hubspot_schema import (
    TYPES,
    HubSpotError,
    JsonDict,
    ObjectType,
    PropertyDef,
    validation_error,
)

if TYPE_CHECKING:
    from airflow_opsflow_testing.hubspot_store import HubSpotCrm

_REQUIRED = ("name", "label", "type", "fieldType", "groupName")


def render(crm: HubSpotCrm, t: ObjectType, prop: PropertyDef) -> JsonDict:
    labels = crm.pipelines.option_labels(t.name, prop.name)
    options = [{"label": labels.get(value, value), "value": value, "displayOrder": order, "hidden": False}
               for order, value in enumerate(prop.options)]
    return {"name": prop.name, "label": prop.label, "type": prop.type, "fieldType": prop.field_type,
            "description": "", "groupName": prop.group_name, "options": options, "displayOrder": -1,
            "calculated": False, "externalOptions": False, "hasUniqueValue": prop.unique, "hidden": False,
            "hubspotDefined": prop.hubspot_defined, "formField": not prop.read_only, "archived": False,
            "modificationMetadata": {"archivable": not prop.hubspot_defined, "readOnlyDefinition": prop.hubspot_defined,
                                     "readOnlyValue": prop.read_only}}


def list_answer(crm: HubSpotCrm, t: ObjectType) -> tuple[int, Any]:
    return 200, {"results": [render(crm, t, p) for _, p in sorted(t.properties.items())]}


def get_answer(crm: HubSpotCrm, t: ObjectType, name: str) -> tuple[int, Any]:
    prop = t.properties.get(name)
    if prop is None:
        raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name} of {t.name}",
                           context={"propertyName": [name]})
    return 200, render(crm, t, prop)


def create_answer(crm: HubSpotCrm, t: ObjectType, body: Any) -> tuple[int, Any]:
    missing = [k for k in _REQUIRED if not (isinstance(body, dict) and body.get(k))]
    if missing:
        raise validation_error("Invalid input JSON: Cannot build PropertyCreate, some of required attributes are not "
                               f"set [{', '.join(missing)}]")
    name, kind = str(body["name"]), str(body["type"])
    if name in t.properties:
        raise HubSpotError(409, "OBJECT_ALREADY_EXISTS", f"Property named '{name}' already exists.",
                           context={"name": [name]})
    if kind not in TYPES:
        raise validation_error(f"Invalid property type {kind}: one of {', '.join(TYPES)}")
    raw_options = body.get("options") or []
    options = [str(o.get("value")) for o in raw_options if isinstance(o, dict) and o.get("value") is not None]
    if kind == "enumeration" and not options:
        raise validation_error(f"Enumeration property {name} needs options with values")
    prop = t.define(name, kind, unique=bool(body.get("hasUniqueValue")), options=options or None,
                    hubspot_defined=False, label=str(body["label"]), field_type=str(body["fieldType"]),
                    group_name=str(body["groupName"]))
    crm.reindex(t)  # a unique property indexes the values records already hold
    return 201, render(crm, t, prop)
