"""ReverseSyncOperator: push modeled rows into a CRM, an API or a table, sending only what changed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_opsflow.core.jinja import has_jinja, has_jinja_anywhere, template_errors, with_placeholders_anywhere
from airflow_opsflow.destinations.base import SyncDestination
from airflow_opsflow.links import OpsSyncsLink
from airflow_opsflow.operators.naming import where_am_i
from airflow_opsflow.operators.templating import NestedTemplates
from airflow_opsflow.sync.spec import SyncSpec, SyncSpecError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_opsflow.sync.mapping import MappingSpec


class ReverseSyncOperator(NestedTemplates, BaseOperator):
    """Sync the rows of a query (or table) to a destination, by primary key, sending only what changed.

    Every run reads the source in one consistent snapshot with a server-side cursor, diffs each row's
    mapped fields against the hashes the destination last confirmed (kept in opsflow's state database),
    and sends new and changed records (and, in ``mirror`` mode, deletes). A key's hash only advances when
    the destination confirmed the record, so rejected records are retried every run until they succeed,
    and a crash re-sends at most the batches in flight. When the state database is the source database
    (PostgreSQL, MySQL/MariaDB), the diff runs there and only the changes leave it.

    The counts ``{added, changed, deleted, unchanged, failed, invalid, skipped}`` and the rejected records
    go to XCom (``return_value``) and, for each Asset outlet, to the asset event's ``extra``.

    :param conn_id: the source's SQL connection. (templated)
    :param sql: the source query, or a ``.sql`` file. (templated)
    :param table: the source table (instead of ``sql``). (templated)
    :param primary_key: the column(s) identifying a record; rows with a null or duplicate key are reported
        as invalid and never sent.
    :param destination: ``HttpEndpoint(...)``, ``HubSpotObjects(...)``, ``SalesforceObjects(...)``,
        ``ZendeskObjects(...)`` or ``DatabaseTable(...)`` (``airflow_opsflow.destinations``). (templated: the
        declaration's own ``template_fields``, e.g. its connection id and object name)
    :param mapping: ``{destination_field: source_column}`` or ``{field: {"column": c, "type": "date"}}``;
        default: every source column under its own name. Only mapped columns count as changes. (templated:
        its values, or the whole mapping as a template rendering to a JSON object)
    :param mode: ``upsert`` (new + changed; default), ``insert`` (new only), ``update`` (changed, and new keys
        as updates of existing records), ``mirror`` (upsert + delete records whose key left the source).
    :param sync_id: names the sync's state (default ``<dag_id>.<task_id>``); keep it when renaming a task.
    :param cursor: an ``updated_at``-style column: later runs read only rows changed since the last one
        (minus ``cursor_lookback``); mirror deletes are found by a full diff every ``full_diff_every``.
    :param cursor_lookback: re-read this far behind the last run's maximum (timedelta or number).
    :param full_diff_every: with a cursor, read everything again at this interval (default 1 day).
    :param full_resync: send every row whatever was sent before. (templated)
    :param dry_run: report counts, field-level diffs for a sample and the expected requests; send nothing
        and leave the state untouched. (templated)
    :param max_delete_share: mirror refuses to delete more than this share of the synced records (0.2)...
        (templated: rendered to a number)
    :param max_delete_rows: ... unless they are at most this many records (default 1: a single delete always
        goes, so a small sync can lose a key; beyond one the share applies, so 10 of 11 is refused). 0: the
        share alone.
    :param allow_empty_source: let mirror delete everything when the source returns no rows.
    :param max_change_share: refuse a run that would change (and delete) more than this share of the synced
        records, before anything is sent (default None: no limit; the plan is then read twice).
    :param approved_plan_hash: the ``plan_hash`` of an approved dry run (``approved_sync``): send only if the
        source still yields exactly that plan, whatever the guards say; else send nothing. (templated)
    :param max_failed: fail the task when more records than this are rejected (default 0; None: no limit).
    :param max_failed_share: fail only above this share of rejected records (with ``max_failed``, both must
        be exceeded).
    :param shard: ``(index, count)``: sync only the keys hashing into this shard, with its own state, so one
        big sync fans out over mapped tasks: ``.partial(...).expand(shard=[(0, 4), (1, 4), (2, 4), (3, 4)])``.
    :param batch_size: records per request (default: the destination's).
    :param concurrency: requests in flight at once.
    :param max_attempts: tries per batch on 5xx/timeouts (rate-limit waits do not count).
    :param state_conn_id: the state database (default ``[opsflow] state_conn_id``). (templated)
    :param diff: ``auto`` (pushdown when the state is in the source database), ``pushdown`` or ``streaming``.
    :param fetch_size: rows per round trip of the source cursor.
    :param record_history: record the run in the result history (``sync_runs``, docs/history.md); default
        ``[opsflow] result_history`` (on).
    """

    template_fields: Sequence[str] = ("conn_id", "sql", "table", "sync_id", "full_resync", "sync_dry_run",
                                      "destination", "mapping", "max_delete_share", "state_conn_id",
                                      "approved_plan_hash")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"sql": "sql", "mapping": "json"}
    ui_color = "#e8eef8"
    operator_extra_links = (OpsSyncsLink(),)

    def __init__(
        self,
        *,
        conn_id: str,
        primary_key: str | Sequence[str],
        destination: SyncDestination,
        sql: str | None = None,
        table: str | None = None,
        mapping: MappingSpec | None = None,
        mode: str = "upsert",
        sync_id: str | None = None,
        cursor: str | None = None,
        cursor_lookback: timedelta | int | float | None = None,
        full_diff_every: timedelta | None = timedelta(days=1),
        full_resync: bool | str = False,
        dry_run: bool | str = False,
        max_delete_share: float | str = 0.2,
        max_delete_rows: int = 1,
        allow_empty_source: bool = False,
        max_change_share: float | None = None,
        approved_plan_hash: str | None = None,
        max_failed: int | None = 0,
        max_failed_share: float | None = None,
        shard: Sequence[int] | None = None,
        batch_size: int | None = None,
        concurrency: int = 4,
        max_attempts: int = 6,
        state_conn_id: str | None = None,
        diff: str = "auto",
        fetch_size: int = 10_000,
        record_history: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        where = self._where_am_i()
        if (sql is None) == (table is None):
            raise ValueError(f"{where}: give exactly one of sql= or table=")
        if not isinstance(destination, SyncDestination):
            raise ValueError(f"{where}: destination must be a SyncDestination (HttpEndpoint, HubSpotObjects, "
                             f"SalesforceObjects, ZendeskObjects, DatabaseTable), got {type(destination).__name__}")
        if concurrency < 1 or (batch_size is not None and batch_size < 1) or max_attempts < 1:
            raise ValueError(f"{where}: concurrency, batch_size and max_attempts must be >= 1")
        self.conn_id, self.sql, self.table = conn_id, sql, table
        self.destination = destination
        self.sync_id = sync_id
        self.full_resync = full_resync
        self.sync_dry_run = dry_run  # not ``dry_run``: BaseOperator has a method of that name
        self.batch_size, self.concurrency, self.max_attempts = batch_size, concurrency, max_attempts
        self.state_conn_id, self.fetch_size = state_conn_id, fetch_size
        self.record_history = record_history
        self.shard = tuple(shard) if shard is not None else None
        self.max_delete_share = max_delete_share
        self.approved_plan_hash = approved_plan_hash
        self._settings = {
            "mode": mode, "cursor": cursor, "cursor_lookback": cursor_lookback, "full_diff_every": full_diff_every,
            "max_delete_rows": max_delete_rows,
            "allow_empty_source": allow_empty_source, "max_change_share": max_change_share,
            "max_failed": max_failed, "max_failed_share": max_failed_share, "diff": diff,
        }
        self.primary_key, self.mapping = primary_key, mapping
        broken = [p for field in ("mapping", "max_delete_share", "state_conn_id")
                  for p in template_errors(getattr(self, field), field)]
        broken += [p for field in destination.template_fields
                   for p in template_errors(getattr(destination, field), f"destination.{field}")]
        if broken:
            raise ValueError(f"{where}: {'; '.join(broken)}")
        self._spec(dry_run=False, full_resync=False, rendered=False)  # fail at DAG parse, not at 3 a.m.

    def _where_am_i(self) -> str:
        return where_am_i(self)

    def _spec(self, dry_run: bool, full_resync: bool, rendered: bool = True) -> SyncSpec:
        """The sync's settings, validated. Before rendering (``rendered=False``, at DAG parse) a templated value
        is checked as far as it can be: a mapping's templated values stand in as placeholder columns, a
        templated whole mapping or share waits for the run, where the rendered values are checked in full."""
        sync_id = self.sync_id or (f"{self.dag_id}.{self.task_id}" if self.has_dag() else self.task_id)
        shard = self.shard
        where = self._where_am_i()
        mapping: Any = self.mapping
        share: Any = self.max_delete_share
        if not rendered:
            mapping = None if has_jinja(mapping) else with_placeholders_anywhere(mapping)
            share = 0.2 if has_jinja_anywhere(share) else share
        elif isinstance(mapping, str):  # a whole mapping from a template renders as JSON text (or a dict natively)
            mapping = _json_object(mapping, "mapping", where)
        try:
            share = _number(share, "max_delete_share")
            # Rendered from the approval's XCom: empty when no approval was needed (the guards then apply).
            approved = self.approved_plan_hash if rendered and isinstance(self.approved_plan_hash, str) else None
            return SyncSpec.build(sync_id, self.primary_key, mapping, shard=shard, dry_run=dry_run,
                                  full_resync=full_resync, max_delete_share=share,
                                  approved_plan_hash=(approved.strip() or None) if approved else None,
                                  **self._settings)
        except (SyncSpecError, TypeError, ValueError) as e:
            if rendered:  # a value from params or a Variable: fixing it, not retrying, helps
                raise AirflowFailException(f"{where}: {e}") from None
            raise ValueError(f"{where}: {e}") from None

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk import conf

        from airflow_opsflow.connections.sql import dialect_of, get_db_hook
        from airflow_opsflow.connections.state import state_store
        from airflow_opsflow.core.sql_source import SourceError, SqlSource
        from airflow_opsflow.core.truth import truth
        from airflow_opsflow.state.store import StateStoreError
        from airflow_opsflow.sync.deliver import DeliveryPolicy, DestinationDown
        from airflow_opsflow.sync.engine import SyncFailed, SyncRefused, SyncRun
        from airflow_opsflow.sync.plan import source_query
        from airflow_opsflow.sync.repo import SyncBusyError

        where = self._where_am_i()
        flags = {}
        for name, value in (("dry_run", self.sync_dry_run), ("full_resync", self.full_resync)):
            try:
                flags[name] = truth(value)
            except ValueError as e:  # a typo must not send (or resend everything)
                raise AirflowFailException(f"{where}: {name} must be true or false: {e}") from None
        spec = self._spec(flags["dry_run"], flags["full_resync"])
        hook = get_db_hook(self.conn_id, where)
        dialect = dialect_of(hook)
        try:
            sql = source_query(dialect, self.sql, self.table, where)
        except ValueError as e:
            raise AirflowFailException(str(e)) from None
        state_conn = self.state_conn_id or conf.get("opsflow", "state_conn_id", fallback="") or None
        if not state_conn:
            raise AirflowFailException(
                f"{where}: a sync keeps its per-key state (what the destination confirmed for each key, so that "
                "only changes are sent) in opsflow's state database, and none is configured: pass "
                "state_conn_id= to ReverseSyncOperator, or set [opsflow] state_conn_id (env "
                "AIRFLOW__OPSFLOW__STATE_CONN_ID) to a PostgreSQL, MySQL/MariaDB or SQLite connection "
                "(docs/sync.md, 'The state database')")

        def store() -> Any:
            return state_store(state_conn, where)

        store()  # an undefined or non-SQL state connection: a clear error now, before anything is read
        same_db = _same_database(self.conn_id, state_conn)
        if dialect == "sqlite" and same_db:
            raise AirflowFailException(f"{where}: the SQLite source and the state store are the same file; SQLite "
                                       "lets one writer block readers, so keep the state in another database")
        opened = self.destination.open(where, spec.state_id, self.concurrency)
        policy = DeliveryPolicy(batch_size=self.batch_size or opened.batch_size, concurrency=self.concurrency,
                                max_attempts=self.max_attempts)
        if policy.batch_size > opened.destination.max_batch:
            raise AirflowFailException(f"{where}: batch_size {policy.batch_size} is over what "
                                       f"{opened.destination.name} takes ({opened.destination.max_batch})")
        source = SqlSource(hook.get_conn, dialect, self.fetch_size, label=f"connection {self.conn_id!r}")
        run = SyncRun(spec, source, sql, store, opened.destination, policy, pushdown_ok=same_db,
                      source_table=self.table, limiter=opened.limiter)
        self.log.info("syncing %s -> %s (%s, sync id %r)", self.table or "query", self.destination.describe(),
                      spec.mode, spec.state_id)
        try:
            report = run.run()
        except (SyncFailed, SyncRefused) as e:
            self._publish(context, e.report, "refused" if isinstance(e, SyncRefused) else "failed", str(e))
            again = (" (to ask again, clear the plan task of the approval group with its downstream tasks: it plans "
                     "anew and asks for approval)") if spec.approved_plan_hash and isinstance(e, SyncRefused) else ""
            raise AirflowFailException(f"{where}: {e}{again}") from None
        except SyncSpecError as e:
            raise AirflowFailException(f"{where}: {e}") from None
        except SyncBusyError as e:
            raise AirflowException(f"{where}: {e}") from None
        except (DestinationDown, StateStoreError, SourceError) as e:
            # Retryable: what the destination confirmed is recorded, and what was sent unrecorded is marked
            # (the next try sends it again); a database that dropped the connection may be back by then.
            check = {StateStoreError: "Check that the state database is up and reachable from the worker",
                     SourceError: "Check that the source database is up and reachable from the worker, and that "
                                  "the source query runs there",
                     DestinationDown: "Check that the destination is up and reachable from the worker"}
            # A connection the hook could not open is already named, with what to check, and the task too.
            reason = str(e).replace(f"{where}: ", "").replace("AirflowException: ", "").rstrip(".")
            reason = reason.replace("AirflowFailException: ", "")
            if isinstance(e.__cause__, AirflowFailException):  # a connection no retry can open (a bad URI)
                raise AirflowFailException(f"{where}: {reason}") from None
            if "Check " not in reason:  # (else the hook or client said what to check)
                advice = next(text for kind, text in check.items() if isinstance(e, kind))
                if isinstance(e, DestinationDown) and e.refused:
                    advice = "Check the destination connection's credentials and what the error names"
                reason += f". {advice}; the task is retried"
            raise AirflowException(f"{where}: {reason} (what the destination confirmed is kept, the rest is sent "
                                   "again)") from None
        finally:
            opened.destination.close()
        return self._publish(context, report)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/lineage.md): the source table or the tables of the source query, as the
        provider's SQL operators name them, into the destination (``hubspot://<account>/<object>``, the
        endpoint's URL, the destination table...)."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_opsflow.lineage import destination_dataset, sql_inputs

        where = self._where_am_i()
        inputs = sql_inputs(self.conn_id, where, sql=self.sql, table=self.table)
        return OperatorLineage(inputs=inputs, outputs=[destination_dataset(self.destination)])

    def _publish(self, context: Context, report: Any, status: str | None = None, message: str = "") -> dict[str, Any]:
        self.log.info("\n%s", report.summary())
        payload: dict[str, Any] = report.to_dict()
        context["ti"].xcom_push(key="sync", value=payload)
        if status is None:
            status = "dry_run" if report.dry_run else "partial" if report.counts.get("failed") else "ok"
        self._record(context, payload, status, message)
        events = context.get("outlet_events")
        for outlet in self.outlets or []:
            if events is not None and type(outlet).__name__ == "Asset":
                events[outlet].extra = {"sync_id": report.sync_id, "dry_run": report.dry_run, **report.counts}
        return payload

    def _record(self, context: Context, payload: dict[str, Any], status: str, message: str) -> None:
        _record_sync(self, context, payload, status, message)


def _record_sync(op: ReverseSyncOperator, context: Context, payload: dict[str, Any], status: str,
                 message: str) -> None:
    """The run into the result history (``sync_runs``); a state database failing here is a warning: what
    the destination confirmed is already recorded per key, only the run's summary row is missing."""
    from airflow_opsflow.connections.state import result_history
    from airflow_opsflow.operators.check_results import history_run
    from airflow_opsflow.state.store import StateStoreError

    where = op._where_am_i()
    history = result_history(op.state_conn_id, where, op.record_history)
    if history is None:
        return
    try:
        history.record_sync(history_run(context), str(payload.get("sync_id", "")), status, payload,
                            op.destination.describe(), message.replace(f"{where}: ", ""))
    except StateStoreError as e:
        op.log.warning("%s: the sync run was not recorded in the result history: %s", where, e)
    finally:
        history.store.close()


def _number(value: Any, field: str) -> float:
    """A share given as a number, or as text (a rendered template, ``"0.5"``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise SyncSpecError(f"{field} must be a number between 0 and 1, got {value!r}")


def _json_object(text: str, field: str, where: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise AirflowFailException(f"{where}: {field} rendered to {text[:200]!r}, not a JSON object such as "
                                   '{"id": "account_id"} (or render it natively: render_template_as_native_obj=True)')
    return value


def _same_database(source_conn_id: str, state_conn_id: str | None) -> bool:
    """The state store is the source database: same connection, or same host, port and database."""
    from airflow.sdk import BaseHook, conf

    state_conn_id = state_conn_id or conf.get("opsflow", "state_conn_id", fallback="") or None
    if state_conn_id is None:
        return False
    if state_conn_id == source_conn_id:
        return True
    a, b = BaseHook.get_connection(source_conn_id), BaseHook.get_connection(state_conn_id)
    return (a.conn_type, a.host, a.port, a.schema) == (b.conn_type, b.host, b.port, b.schema) and bool(a.host)
