"""Read dbt's ``run_results.json`` and ``manifest.json`` (dbt-core >= 1.8), refusing what we cannot trust:
a missing or truncated file, a schema version we do not know, results older than the run.

dbt writes ``run_results.json`` once, when the command ends (also when some nodes errored, and with what
finished when interrupted), but not at all when parsing or compiling fails: then the file left in
``target/`` is an earlier run's, which :func:`load` detects with ``not_before``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# run_results v6: dbt-core 1.8 to 1.11; manifest v12: the same releases.
RUN_RESULTS_VERSIONS = frozenset({6})
MANIFEST_VERSIONS = frozenset({12})
_VERSION = re.compile(r"/dbt/([a-z-]+)/v(\d+)\.json$")


class DbtArtifactError(ValueError):
    """The artifacts cannot be read or trusted; the message names the file and why."""


class StaleResultsError(DbtArtifactError):
    """``run_results.json`` was written before the run that should have written it."""


@dataclass
class DbtRun:
    """One dbt invocation's results and the manifest they refer to.

    :param results: ``run_results.json`` entries by ``unique_id``.
    :param nodes: manifest nodes (models, tests, seeds...) and unit tests by ``unique_id``.
    :param sources: manifest sources by ``unique_id``.
    """

    path: Path
    dbt_version: str
    invocation_id: str | None
    generated_at: datetime
    command: str | None
    results: dict[str, dict[str, Any]]
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    project: str | None = None


def load(target: str | Path, not_before: datetime | None = None) -> DbtRun:
    """Read ``run_results.json`` and ``manifest.json`` from dbt's ``target`` directory.

    :param not_before: results generated earlier are refused (they are from an earlier run: the run
        that should have written them failed before it could).
    """
    target = Path(target)
    run_results = _read(target / "run_results.json", "run-results", RUN_RESULTS_VERSIONS, _hint_missing_results)
    meta = run_results.get("metadata") or {}
    generated = _timestamp(meta.get("generated_at"), target / "run_results.json")
    if not_before is not None and generated < not_before:
        raise StaleResultsError(
            f"{target / 'run_results.json'} was written at {generated:%Y-%m-%d %H:%M:%S} UTC, before this run "
            f"started ({not_before.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC): the dbt command of this run wrote no "
            "results (did it fail to parse or compile? its log says why)")
    results: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(run_results.get("results") or []):
        if not isinstance(entry, dict) or "unique_id" not in entry or "status" not in entry:
            raise DbtArtifactError(f"{target / 'run_results.json'}: result #{i + 1} has no unique_id or status")
        results[entry["unique_id"]] = entry
    manifest_path = target / "manifest.json"
    manifest = _read(manifest_path, "manifest", MANIFEST_VERSIONS, lambda p: f"{p} is missing: dbt writes it "
                     "with run_results.json; keep both from the same run") if manifest_path.exists() or results \
        else {}
    args = run_results.get("args") or {}
    return DbtRun(
        path=target, dbt_version=str(meta.get("dbt_version") or "?"), invocation_id=meta.get("invocation_id"),
        generated_at=generated, command=args.get("which") if isinstance(args, dict) else None, results=results,
        nodes={**(manifest.get("nodes") or {}), **(manifest.get("unit_tests") or {})},
        sources=manifest.get("sources") or {},
        project=(manifest.get("metadata") or {}).get("project_name"),
    )


def _hint_missing_results(path: Path) -> str:
    return (f"{path} does not exist: dbt did not finish a command in this project (a parse or compile error "
            "stops it before it writes results), or target_path points elsewhere")


def _read(path: Path, kind: str, versions: frozenset[int], missing: Any) -> dict[str, Any]:
    if not path.exists():
        raise DbtArtifactError(missing(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DbtArtifactError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}): "
                               "truncated or still being written?") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DbtArtifactError(f"{path} cannot be read: {e}") from None
    if not isinstance(data, dict):
        raise DbtArtifactError(f"{path} is not a dbt {kind} artifact (a JSON object is expected)")
    schema = str((data.get("metadata") or {}).get("dbt_schema_version") or "")
    m = _VERSION.search(schema)
    if not m or m.group(1) != kind:
        raise DbtArtifactError(f"{path} is not a dbt {kind} artifact (dbt_schema_version {schema or 'missing'!r})")
    version = int(m.group(2))
    if version not in versions:
        dbt = (data.get("metadata") or {}).get("dbt_version", "?")
        raise DbtArtifactError(
            f"{path} uses the {kind} schema v{version} (dbt {dbt}); opsflow reads "
            f"{', '.join(f'v{v}' for v in sorted(versions))} (dbt-core 1.8 to 1.11)")
    return data


def _timestamp(value: Any, path: Path) -> datetime:
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise DbtArtifactError(f"{path}: metadata.generated_at {value!r} is not a timestamp") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def merge(runs: list[DbtRun]) -> DbtRun:
    """Several invocations' results as one (e.g. one per astronomer-cosmos task): per ``unique_id`` the
    newest result wins, so a model rebuilt later is no longer an error."""
    ordered = sorted(runs, key=lambda r: r.generated_at)
    last = ordered[-1]
    merged = DbtRun(last.path, last.dbt_version, last.invocation_id, last.generated_at, last.command, {},
                    project=last.project)
    for run in ordered:
        merged.results.update(run.results)
        merged.nodes.update(run.nodes)
        merged.sources.update(run.sources)
    return merged
