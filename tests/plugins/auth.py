"""An auth manager for the API tests that, like a real deployment's per-DAG permissions, hides some DAGs from
some users: Airflow's simple auth manager with ``OPSFLOW_TEST_HIDDEN_DAGS=user:dag_a,dag_b;user2:dag_c``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from fastapi.testclient import TestClient


def _hidden() -> dict[str, set[str]]:
    hidden: dict[str, set[str]] = {}
    for part in filter(None, os.environ.get("OPSFLOW_TEST_HIDDEN_DAGS", "").split(";")):
        user, _, dags = part.partition(":")
        hidden[user.strip()] = {d.strip() for d in dags.split(",") if d.strip()}
    return hidden


class DagScopedAuthManager(SimpleAuthManager):
    """The simple auth manager's roles, minus the DAGs ``OPSFLOW_TEST_HIDDEN_DAGS`` hides from a user."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        if details is not None and details.id in _hidden().get(user.get_name(), set()):
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)


Users = dict[str, tuple[str, str]]  # name: (simple auth manager role, password)


@contextmanager
def api_server(users: Users, secrets: Path, hidden: str = "") -> Iterator[TestClient]:
    """Airflow's API server app (core API, auth manager, plugins) with ``users``, each of them hidden the
    DAGs ``hidden`` names (``OPSFLOW_TEST_HIDDEN_DAGS``), its passwords file written under ``secrets``."""
    passwords = secrets / "passwords.json"
    passwords.write_text(json.dumps({name: password for name, (_, password) in users.items()}))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIRFLOW__CORE__AUTH_MANAGER", "tests.plugins.auth.DagScopedAuthManager")
        env.setenv("OPSFLOW_TEST_HIDDEN_DAGS", hidden)
        env.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", ",".join(f"{n}:{r}" for n, (r, _) in users.items()))
        env.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        env.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
        env.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "opsflow-test-" + "s" * 64)  # HS512 wants 64 bytes or more
        from airflow.api_fastapi.app import create_app

        with TestClient(create_app("core")) as client:
            yield client


def login(client: TestClient, users: Users, user: str) -> dict[str, str]:
    """The user's JWT from the simple auth manager's ``POST /auth/token``, as a request header."""
    answer = client.post("/auth/token", json={"username": user, "password": users[user][1]})
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}
