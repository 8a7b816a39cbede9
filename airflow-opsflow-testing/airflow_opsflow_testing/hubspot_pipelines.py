"""Ticket pipelines of :class:`~airflow_opsflow_testing.hubspot_server.FakeHubSpot` (``/crm/v3/pipelines/tickets``).

Every account starts with HubSpot's default ticket pipeline, id ``0`` "Support Pipeline", whose stages ``1`` New,
``2`` Waiting on contact, ``3`` Waiting on us (``metadata.ticketState`` OPEN) and ``4`` Closed (CLOSED); default
pipelines report ``createdAt`` 0, as HubSpot documents. Tests add others with
:meth:`~airflow_opsflow_testing.hubspot_server.FakeHubSpot.define_pipeline`, clients with
``POST /crm/v3/pipelines/tickets``.

A ticket write is checked against them: ``hs_pipeline`` defaults to ``0`` on create, ``hs_pipeline_stage`` is
required on create and must belong to the ticket's pipeline, otherwise the write fails with HubSpot's
``Property values were not valid`` shape (``INVALID_OPTION``; the message wording is the fake's). Entering a
CLOSED stage sets ``closed_date`` (unless the write sets it), re-opening clears it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_opsflow_testing.hubspot_schema import (
    HubSpotError,
    JsonDict,
    ObjectType,
    PropertyIssue,
    hubspot_time,
    validation_error,
)

STATES = ("OPEN", "CLOSED")
_PROPS = {"tickets": ("hs_pipeline", "hs_pipeline_stage")}  # object type -> (pipeline, stage) properties
_EPOCH = datetime.fromtimestamp(0, UTC)
_DEFAULT_STAGES = (("1", "New", "OPEN"), ("2", "Waiting on contact", "OPEN"), ("3", "Waiting on us", "OPEN"),
                   ("4", "Closed", "CLOSED"))


@dataclass
class Stage:
    id: str
    label: str
    state: str  # ticketState: OPEN | CLOSED
    display_order: int
    created_at: datetime

    def render(self) -> JsonDict:
        at = hubspot_time(self.created_at)
        return {"id": self.id, "label": self.label, "displayOrder": self.display_order,
                "metadata": {"ticketState": self.state}, "createdAt": at, "updatedAt": at, "archived": False}


@dataclass
class Pipeline:
    id: str
    label: str
    display_order: int
    created_at: datetime
    stages: list[Stage] = field(default_factory=list)

    def stage(self, stage_id: str) -> Stage | None:
        return next((s for s in self.stages if s.id == stage_id), None)

    def render(self) -> JsonDict:
        at = hubspot_time(self.created_at)
        return {"id": self.id, "label": self.label, "displayOrder": self.display_order,
                "stages": [s.render() for s in self.stages], "createdAt": at, "updatedAt": at, "archived": False}


class Pipelines:
    """The pipelines of each object type that has them; keeps the pipeline/stage property options in step."""

    def __init__(self, types: Mapping[str, ObjectType]) -> None:
        self._types = types
        self._pipelines: dict[str, dict[str, Pipeline]] = {name: {} for name in _PROPS}
        self._ids = itertools.count(1_000_001)  # ids of pipelines and stages created without one
        self.define("tickets", "0", "Support Pipeline", _DEFAULT_STAGES, created_at=_EPOCH)

    def define(self, object_type: str, pipeline_id: str | None, label: str,
               stages: Iterable[tuple[str | None, str, str]], display_order: int | None = None,
               created_at: datetime | None = None) -> Pipeline:
        """Add (or replace) a pipeline; ``stages`` are ``(id or None, label, "OPEN"|"CLOSED")``, in order."""
        pipelines = self._of(object_type)
        at = created_at or datetime.now(UTC)
        pipeline = Pipeline(pipeline_id or str(next(self._ids)), label,
                            len(pipelines) if display_order is None else display_order, at)
        taken = {s.id for p in pipelines.values() if p.id != pipeline.id for s in p.stages}
        for order, (stage_id, stage_label, state) in enumerate(stages):
            if state not in STATES:
                raise ValueError(f"ticketState must be one of {STATES}, not {state!r}")
            sid = stage_id or str(next(self._ids))
            if sid in taken:
                raise ValueError(f"stage id {sid!r} is already used by another pipeline")
            taken.add(sid)
            pipeline.stages.append(Stage(sid, stage_label, state, order, at))
        if not pipeline.stages:
            raise ValueError("a pipeline needs at least one stage")
        pipelines[pipeline.id] = pipeline
        self._sync(object_type)
        return pipeline

    def get(self, object_type: str, pipeline_id: str) -> Pipeline | None:
        return self._of(object_type).get(pipeline_id)

    def all(self, object_type: str) -> list[Pipeline]:
        return sorted(self._of(object_type).values(), key=lambda p: (p.display_order, p.label))

    def stage(self, object_type: str, stage_id: str) -> Stage | None:
        return next((s for p in self._of(object_type).values() if (s := p.stage(stage_id))), None)

    def option_labels(self, object_type: str, prop: str) -> dict[str, str]:
        """Labels of the pipeline/stage property options, for the properties API."""
        names = _PROPS.get(object_type)
        if names is None or prop not in names:
            return {}
        if prop == names[0]:
            return {p.id: p.label for p in self.all(object_type)}
        return {s.id: s.label for p in self.all(object_type) for s in p.stages}

    def _of(self, object_type: str) -> dict[str, Pipeline]:
        try:
            return self._pipelines[object_type]
        except KeyError:
            raise ValueError(f"no pipelines for {object_type!r}: one of {sorted(self._pipelines)}") from None

    def _sync(self, object_type: str) -> None:
        pipeline_prop, stage_prop = _PROPS[object_type]
        props = self._types[object_type].properties
        props[pipeline_prop].options = tuple(p.id for p in self.all(object_type))
        props[stage_prop].options = tuple(s.id for p in self.all(object_type) for s in p.stages)

    # --- checks on writes --------------------------------------------------------------------------------

    def check(self, t: ObjectType, values: dict[str, str | None], current: Mapping[str, str],
              creating: bool) -> list[PropertyIssue]:
        """Validate the pipeline/stage a write leaves the record in; fill ``values`` with what HubSpot derives."""
        names = _PROPS.get(t.name)
        if names is None:
            return []
        pipeline_prop, stage_prop = names
        if creating and not values.get(pipeline_prop):
            values[pipeline_prop] = "0"
        if not creating and pipeline_prop not in values and stage_prop not in values:
            return []
        pipeline_id = values.get(pipeline_prop) or current.get(pipeline_prop) or "0"
        stage_id = values[stage_prop] if stage_prop in values else current.get(stage_prop)
        pipeline = self.get(t.name, pipeline_id)
        if pipeline is None:  # the enumeration check has already refused an unknown pipeline id
            return []
        if not stage_id:
            return [PropertyIssue(stage_prop, "REQUIRED_FIELD", f"{stage_prop} is required: a ticket needs a stage "
                                                                 f"of pipeline {pipeline_id}")]
        stage = pipeline.stage(stage_id)
        if stage is None:
            allowed = ", ".join(s.id for s in pipeline.stages)
            return [PropertyIssue(stage_prop, "INVALID_OPTION", f"{stage_id} was not one of the allowed options: "
                                                                f"[{allowed}] (stages of pipeline {pipeline_id})")]
        was = self.stage(t.name, current.get(stage_prop, ""))
        was_closed = was is not None and was.state == "CLOSED"
        if "closed_date" not in values and stage_prop in values:
            if stage.state == "CLOSED" and not was_closed:
                values["closed_date"] = hubspot_time(datetime.now(UTC))
            elif stage.state == "OPEN" and current.get("closed_date"):
                values["closed_date"] = None
        return []

    # --- endpoints ---------------------------------------------------------------------------------------

    def list_answer(self, object_type: str) -> tuple[int, Any]:
        return 200, {"results": [p.render() for p in self.all(self._known(object_type))]}

    def get_answer(self, object_type: str, pipeline_id: str, stages_only: bool = False) -> tuple[int, Any]:
        pipeline = self.get(self._known(object_type), pipeline_id)
        if pipeline is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Unable to find pipeline {pipeline_id}",
                               context={"pipelineId": [pipeline_id]})
        return 200, ({"results": [s.render() for s in pipeline.stages]} if stages_only else pipeline.render())

    def create_answer(self, object_type: str, body: Any) -> tuple[int, Any]:
        name = self._known(object_type)
        if not isinstance(body, dict) or not body.get("label") or not isinstance(body.get("stages"), list):
            raise validation_error("Invalid input JSON: Cannot build PipelineInput, some of required attributes are "
                                   "not set [label, stages, displayOrder]")
        if any(p.label == body["label"] for p in self.all(name)):
            raise HubSpotError(409, "CONFLICT", f"A pipeline with label {body['label']} already exists")
        stages = []
        for item in body["stages"]:
            state = (item.get("metadata") or {}).get("ticketState") if isinstance(item, dict) else None
            if state not in STATES or not item.get("label"):
                raise validation_error("Each ticket pipeline stage needs a label and metadata.ticketState OPEN or "
                                       "CLOSED")
            stages.append((None, str(item["label"]), str(state)))
        order = body.get("displayOrder")
        pipeline = self.define(name, None, str(body["label"]), stages, order if isinstance(order, int) else None)
        return 201, pipeline.render()

    def _known(self, object_type: str) -> str:
        for name, t in self._types.items():
            if name in self._pipelines and object_type in (name, t.type_id, t.label.lower()):
                return name
        raise validation_error(f"Unable to infer object type from: {object_type}")
