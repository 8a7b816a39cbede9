"""DAG-parse import cost: what importing opsflow adds on top of ``airflow.sdk``, in fresh interpreters."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import pkgutil
import statistics
import subprocess
import sys
from pathlib import Path

HEAVY = ("pandas", "jira", "slack_sdk", "sqlalchemy")  # must stay out of DAG parsing
OUR_PACKAGES = ("airflow_opsflow.operators", "airflow_opsflow.sensors")

# Timed inside the child so interpreter start-up (identical for every variant) is left out.
_CHILD = f"""
import importlib, json, sys, time
started = time.perf_counter()
for name in sys.argv[1:]:
    importlib.import_module(name)
seconds = time.perf_counter() - started
print(json.dumps({{"seconds": seconds, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


@dataclasses.dataclass
class ImportVariant:
    label: str
    modules: list[str]
    seconds: list[float] = dataclasses.field(default_factory=list)
    heavy: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000


@dataclasses.dataclass
class ImportCost:
    variants: list[ImportVariant]
    missing: list[str]  # our packages that do not exist yet


def _exists(module: str) -> bool:
    """True for a real module or package; False for missing ones and bare namespace directories."""
    try:
        spec = importlib.util.find_spec(module)
    except ImportError:
        return False
    return spec is not None and spec.origin not in (None, "namespace")


def _submodules(package: str) -> list[str]:
    spec = importlib.util.find_spec(package)
    paths = list(spec.submodule_search_locations or []) if spec else []
    return [f"{package}.{info.name}" for info in pkgutil.iter_modules(paths) if not info.name.startswith("_")]


def measure(repeats: int, env: dict[str, str]) -> ImportCost:
    """Median of ``repeats`` fresh interpreters per variant, variants interleaved to share any drift."""
    present = [name for name in OUR_PACKAGES if _exists(name)]
    missing = [name for name in OUR_PACKAGES if name not in present]
    variants = [ImportVariant("airflow.sdk", ["airflow.sdk"])]
    if present:
        variants.append(ImportVariant(f"airflow.sdk + {' + '.join(present)}", ["airflow.sdk", *present]))
        leaves = [sub for name in present for sub in _submodules(name)]
        if leaves:
            # What a DAG file really imports: ``from airflow_opsflow.operators.data_check import ...``.
            variants.append(ImportVariant("airflow.sdk + " + " + ".join(leaves), ["airflow.sdk", *leaves]))
    child_env = dict(os.environ, **env)
    for _ in range(repeats):
        for variant in variants:
            if variant.error:
                continue
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, *variant.modules],
                capture_output=True,
                text=True,
                env=child_env,
            )
            if done.returncode != 0:
                variant.error = (done.stderr.strip().splitlines() or ["?"])[-1]
                continue
            reply = json.loads(done.stdout.strip().splitlines()[-1])
            variant.seconds.append(float(reply["seconds"]))
            variant.heavy = list(reply["heavy"])
    return ImportCost(variants, missing)


def repo_env(repo: Path) -> dict[str, str]:
    """Make the work tree importable in children even when the package is not installed."""
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": f"{repo}{os.pathsep}{path}" if path else str(repo)}
