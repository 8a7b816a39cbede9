"""`make demo`: run the example check DAG for real on an embedded SQLite database and tell the story.

1. seed a SQLite database with payments, deliveries and invoices carrying planted problems;
2. run the ``ops_payments_and_deliveries`` DAG with Airflow's ``dag.test()`` (temporary AIRFLOW_HOME);
3. print each check task's report from its XCom;
4. repair the data, run again, and show that every check passes.

Airflow's own log goes to .demo/airflow.log so the story stays readable.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent / ".demo"
DB = DEMO / "ops.db"
LOG = DEMO / "airflow.log"


@contextmanager
def quiet(log_path: Path) -> Iterator[None]:
    """Send this process's stdout/stderr (Airflow's task logs) to a file for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)


def main() -> int:
    DEMO.mkdir(exist_ok=True)
    LOG.write_text("")
    from airflow_opsflow.testing.sample_data import repair, seed

    conn = sqlite3.connect(DB)
    counts = seed(conn)
    print(f"Seeded {DB.relative_to(HERE.parent)}: " + ", ".join(f"{n} {t}" for t, n in counts.items()))
    print("Planted: 6/40 failed payments in the last hour, 2 negative amounts, 1 unknown customer,")
    print("         4 deliveries stuck in transit > 48 h, 3 invoices that do not add up, 1 duplicate number.\n")
    os.environ["AIRFLOW_CONN_OPS_DB"] = json.dumps({"conn_type": "sqlite", "host": str(DB)})

    from airflow_opsflow.testing.dag_runner import airflow_home, run_dag

    started = time.monotonic()
    with airflow_home(dags_folder=HERE):
        sys.path.insert(0, str(HERE))
        from payments_and_deliveries import dag

        from airflow_opsflow.checks.report import format_report
        from airflow_opsflow.checks.results import CheckResult

        for attempt, title in ((1, "Run 1: the data as it is"), (2, "Run 2: after the ops team repaired it")):
            if attempt == 2:
                repair(conn)
            with quiet(LOG):
                result = run_dag(dag)
            print("=" * 100)
            print(f"{title}: DAG run {result.state}")
            print("=" * 100)
            for task_id, state in sorted(result.task_states.items()):
                payload = result.xcoms.get(task_id, {}).get("results")
                print(f"\n## {task_id}: {state}")
                if payload:
                    results = [CheckResult.from_dict(r) for r in payload["results"]]
                    print(format_report(results))
            print()
    print(f"Done in {time.monotonic() - started:.0f} s. Airflow's own log: {LOG.relative_to(HERE.parent)}")
    print("Point the same DAG at your database: create an Airflow connection (any SQL type) and trigger")
    print("ops_payments_and_deliveries with {\"conn_id\": \"<your connection>\"}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
