"""opsflow's command line: feedback on metric checks, against the state store of an Airflow deployment.

::

    python -m airflow_opsflow.cli mark-expected --dag shop --task daily_orders --check orders_per_day \\
        --bucket 2026-06-15 [--segment country=DE] --by alice [--note "Whit Monday"] [--state-conn-id ID]
    python -m airflow_opsflow.cli unmark --dag ... --task ... --check ... --bucket ... [--segment ...]
    python -m airflow_opsflow.cli marks --dag ... --task ... --check ... [--json]

The state store is ``--state-conn-id``, else ``[opsflow] state_conn_id`` (as the operators read it). Exit
codes: 0 done, 2 the input names no stored check, segment or bucket (or cannot be read), 1 the state
database could not be used. Shell layer: it reads Airflow's configuration and connections.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from airflow_opsflow.core.tables import text_table
from airflow_opsflow.monitors.repo import MarkError

USAGE_ERROR, STORE_ERROR = 2, 1


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m airflow_opsflow.cli",
                                  description="Feedback on opsflow metric checks, kept in the state database.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def check_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dag", required=True, help="the DAG id")
        p.add_argument("--task", required=True, help="the task id (a mapped instance: 'task[3]')")
        p.add_argument("--check", required=True, help="the check's name")
        p.add_argument("--history-key", help="the check's history_key, when it sets one")
        p.add_argument("--state-conn-id", help="the state database (default: [opsflow] state_conn_id)")

    def point_args(p: argparse.ArgumentParser) -> None:
        check_args(p)
        p.add_argument("--bucket", required=True,
                       help="a local date (2026-06-15), a date and time, or a start with its offset")
        p.add_argument("--segment", action="append", default=[], metavar="NAME=VALUE",
                       help="a segment value, repeated in segment_by order (checks with segment_by)")
        p.add_argument("--timezone", help="the check's time zone, to read a local time exactly (hour buckets)")

    mark = commands.add_parser("mark-expected", help="mark a flagged point expected; closes its incident")
    point_args(mark)
    mark.add_argument("--by", required=True, help="who marks it (kept with the mark)")
    mark.add_argument("--note", help="why (kept with the mark and the incident)")
    point_args(commands.add_parser("unmark", help="take a mark back"))
    listing = commands.add_parser("marks", help="list a check's marks")
    check_args(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    return top


def _run(args: argparse.Namespace) -> str:
    from airflow_opsflow.connections.state import state_store
    from airflow_opsflow.flows import feedback

    check = {"dag_id": args.dag, "task_id": args.task, "check": args.check, "history_key": args.history_key}
    point = ({"bucket": args.bucket, "segment": feedback.parse_segment(args.segment), "timezone": args.timezone}
             if args.command != "marks" else {})
    store = state_store(args.state_conn_id, f"opsflow {args.command}")
    try:
        if args.command == "mark-expected":
            return feedback.mark_expected(store, **check, **point, by=args.by, note=args.note).text()
        if args.command == "unmark":
            return feedback.unmark(store, **check, **point).text()
        found = feedback.marks(store, **check)
    finally:
        store.close()
    rows = [{"bucket": m.bucket.isoformat(), "segment": list(m.segment), "mark": m.mark, "by": m.marked_by,
             "at": m.marked_at.isoformat(), "note": m.note} for m in found]
    if args.json:
        return "\n".join(json.dumps(r) for r in rows)
    if not rows:
        return f"no marks on dag {args.dag!r}, task {args.task!r}, check {args.check!r}"
    return text_table(["bucket (UTC)", "segment", "mark", "by", "at (UTC)", "note"],
                      [[m.bucket.isoformat(), ", ".join(str(v) for v in m.segment), m.mark, m.marked_by,
                        m.marked_at.isoformat(), m.note] for m in found], max_width=60)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from airflow.sdk.exceptions import AirflowException

    from airflow_opsflow.state.store import StateStoreError

    try:
        print(_run(args))
    except MarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return USAGE_ERROR
    except (AirflowException, StateStoreError) as e:  # their messages name the connection, never its secrets
        print(f"error: {e}", file=sys.stderr)
        return STORE_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
