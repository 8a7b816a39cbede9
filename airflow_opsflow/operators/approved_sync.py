"""approved_sync: a reverse sync whose risky plans wait for a person (Airflow 3.1+ human-in-the-loop).

    plan (dry run) -> needs_approval -> approve (ApprovalOperator) -> apply
                                   \\______________________________/

``plan`` is a dry run; ``needs_approval`` asks only when a real run would be refused by a guard
(``max_delete_share``/``max_delete_rows``, ``max_change_share``, an empty source) or, with
``require_approval=True``, whenever the plan sends anything; ``approve`` shows the plan as Markdown in the
Required Actions page; ``apply`` is the real run, given the approved ``plan_hash``: it sends only if the source
still yields exactly that plan (the guards are lifted for it), else it fails, sending nothing, and the plan
must be made and approved again (clear ``plan`` with its downstream tasks). A rejection skips ``apply``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import TaskGroup

APPROVE = "Approve"  # ApprovalOperator.APPROVE (not imported here: the provider is imported at DAG parse only)


def approved_sync(group_id: str, *, require_approval: bool = False, subject: str | None = None,
                  response_timeout: timedelta | None = None, assigned_users: Any = None,
                  notifiers: Sequence[Any] | Any = None, **sync_kwargs: Any) -> TaskGroup:
    """A task group that plans a reverse sync, has a person approve a risky plan, then applies exactly that plan.

    :param group_id: the task group's id (its tasks: ``plan``, ``needs_approval``, ``approve``, ``apply``).
    :param require_approval: ask for any plan that sends something, not only for plans over the guards.
    :param subject: the approval's headline (templated); default names the sync and its counts.
    :param response_timeout: how long to wait for an answer (then the approval task fails, nothing is sent).
    :param assigned_users: who may answer (``{"id": ..., "name": ...}`` or a list of them).
    :param notifiers: Airflow notifiers told when the approval waits (e.g. a Slack message with the link).
    :param sync_kwargs: :class:`~airflow_opsflow.operators.reverse_sync.ReverseSyncOperator` arguments, shared
        by the dry run and the real run (one ``sync_id``, default ``<dag_id>.<group_id>``); not ``dry_run``.
    """
    from airflow.providers.standard.operators.hitl import ApprovalOperator
    from airflow.providers.standard.operators.python import BranchPythonOperator
    from airflow.sdk import TaskGroup

    from airflow_opsflow.operators.reverse_sync import ReverseSyncOperator

    for name in ("dry_run", "approved_plan_hash", "task_id"):
        if name in sync_kwargs:
            raise ValueError(f"approved_sync {group_id!r}: {name} is set by the group, not passed")
    with TaskGroup(group_id) as group:
        plan = ReverseSyncOperator(task_id="plan", dry_run=True, **sync_kwargs)
        # One state for both runs: the dry run must see what the real run will diff against.
        shared = sync_kwargs.get("sync_id") or (f"{plan.dag_id}.{group_id}" if plan.has_dag() else group_id)
        plan.sync_id = shared
        prefix = plan.task_id.removesuffix("plan")  # the group's prefix, nested groups included
        gate_id, approve_id, apply_id = f"{prefix}needs_approval", f"{prefix}approve", f"{prefix}apply"
        needs_approval = BranchPythonOperator(
            task_id="needs_approval", python_callable=_needs_approval,
            op_kwargs={"plan_task": plan.task_id, "approve_task": approve_id, "apply_task": apply_id,
                       "always": require_approval, "subject": subject})
        approve = ApprovalOperator(
            task_id="approve",
            subject=f"{{{{ ti.xcom_pull(task_ids='{gate_id}', key='subject') }}}}",
            body=f"{{{{ ti.xcom_pull(task_ids='{gate_id}', key='body') }}}}",
            response_timeout=response_timeout, assigned_users=assigned_users, notifiers=notifiers)
        # The approved hash is the plan's, and only when "Approve" was chosen; empty when no approval was
        # needed (the apply is then an ordinary guarded run).
        approved = (f"{{% set answer = ti.xcom_pull(task_ids='{approve_id}') %}}"
                    f"{{{{ ti.xcom_pull(task_ids='{plan.task_id}', key='sync')['plan_hash'] "
                    f"if answer and answer['chosen_options'] == ['{APPROVE}'] else '' }}}}")
        apply = ReverseSyncOperator(task_id="apply", approved_plan_hash=approved,
                                    trigger_rule="none_failed_min_one_success", **{**sync_kwargs, "sync_id": shared})
        plan >> needs_approval >> approve >> apply
        needs_approval >> apply
    return group


def _needs_approval(ti: Any, plan_task: str, approve_task: str, apply_task: str, always: bool,
                    subject: str | None) -> list[str]:
    """Branch on the dry run's report: ask (approve, then apply) or apply at once; push the approval's text."""
    from airflow_opsflow.sync.report import plan_markdown

    plan = ti.xcom_pull(task_ids=plan_task, key="sync")
    if not isinstance(plan, dict) or "plan_hash" not in plan:
        raise ValueError(f"task {ti.task_id!r}: no dry-run report from {plan_task!r} (XCom 'sync')")
    c = plan["counts"]
    sends = c["added"] + c["changed"] + c["deleted"]
    if not plan.get("refused") and not (always and sends):
        return [apply_task]
    ti.xcom_push(key="subject", value=subject or (
        f"Approve sync {plan['sync_id']}: {c['added']:,} added, {c['changed']:,} changed, {c['deleted']:,} deleted"))
    ti.xcom_push(key="body", value=plan_markdown(plan))
    return [approve_task, apply_task]
