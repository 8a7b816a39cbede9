"""ReportOperator: queries on one or more connections, merged with pandas, delivered to Slack and email."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_opsflow.core.durations import parse_duration
from airflow_opsflow.core.jinja import has_jinja
from airflow_opsflow.operators.naming import where_am_i
from airflow_opsflow.operators.templating import NestedTemplates, nested_template_errors
from airflow_opsflow.reports.output import FORMATS
from airflow_opsflow.reports.spec import Chart, ReportSpec, ReportSpecError, parse

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from airflow_opsflow.report_deliveries import ReportDelivery
    from airflow_opsflow.reports.output import RenderedReport

Transform = Callable[[dict[str, "pd.DataFrame"], Any], "pd.DataFrame | dict[str, pd.DataFrame]"]
ON_EMPTY = ("send", "skip", "fail")


class ReportOperator(NestedTemplates, BaseOperator):
    """Build a report from SQL queries (on one connection or several), merged and shaped with pandas, and
    deliver it as a table, a CSV/XLSX file and a chart to Slack and/or email.

    Nothing is sent until the whole report is built, rendered and checked against every destination's
    limits: a failing query or a report too large for a channel fails the task with nothing half-sent. A
    retried task sends only to the destinations its earlier tries did not reach (recorded in the state
    store, when one is configured).

    :param queries: ``{name: sql}``, ``{name: {"sql": ..., "conn_id": ...}}`` or a list of
        ``{"name", "sql", "conn_id"}``: each query's rows become a pandas frame named ``name``. (templated)
    :param conn_id: the connection of queries that do not name one. (templated)
    :param steps: pandas operations on the frames, in order (``merge``, ``concat``, ``filter``, ``compute``,
        ``group``, ``pivot``, ``sort``, ``head``, ``rename``, ``select``, ``total``, ``round``): see
        :mod:`airflow_opsflow.reports.spec`.
    :param transform: a callable ``(frames, context) -> DataFrame | {name: DataFrame}`` run after the steps,
        for what the steps cannot say.
    :param report_frame: the frame that is the report (default: the last one written).
    :param title: the report's title: the message's first line and the email's subject. (templated)
    :param description: a line under the title (e.g. the period). (templated)
    :param files: attached files: ``("csv",)``, ``("xlsx",)``, both, or ``()`` (default ``("csv",)``).
    :param xlsx_sheets: frames added to the XLSX file after the report sheet (e.g. the raw queries).
    :param chart: a :class:`~airflow_opsflow.reports.spec.Chart` (or its fields as a dict) for a PNG chart.
    :param filename: the attachments' base name (default: from the title). (templated)
    :param deliver: where it goes: ``[SlackReport(channel=...), EmailReport(to=[...])]``. (templated: each
        destination's channel, recipients, connection; give ``name=`` to keep its id stable when templated)
    :param on_empty: when the report has no rows: ``send`` (default: say so), ``skip`` (send nothing) or
        ``fail``.
    :param max_query_rows: a query returning more rows fails the task (default 1,000,000: a report, not an
        export).
    :param statement_timeout: cancel any query running longer (``"5m"``).
    :param state_conn_id: the state database recording deliveries (default ``[opsflow] state_conn_id``;
        without one a retried task sends to every destination again). (templated)
    """

    template_fields: Sequence[str] = ("queries", "conn_id", "title", "description", "filename", "deliver",
                                      "state_conn_id")
    template_fields_renderers = {"queries": "json"}
    ui_color = "#e8eefc"

    def __init__(
        self,
        *,
        queries: Any,
        title: str,
        deliver: Sequence[ReportDelivery],
        conn_id: str | None = None,
        steps: list[dict[str, Any]] | None = None,
        transform: Transform | None = None,
        report_frame: str | None = None,
        description: str | None = None,
        files: Sequence[str] = ("csv",),
        xlsx_sheets: Sequence[str] = (),
        chart: Chart | dict[str, Any] | None = None,
        filename: str | None = None,
        on_empty: str = "send",
        max_query_rows: int = 1_000_000,
        statement_timeout: str | int | timedelta | None = None,
        state_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        who = self._where_am_i()
        self.queries = queries
        self.conn_id = conn_id
        self.steps = steps or []
        self.transform = transform
        self.report_frame = report_frame
        self.title = title
        self.description = description
        bad = [f for f in files if f not in FORMATS]
        if bad:
            raise ValueError(f"{who}: files has unknown formats {bad}; use {FORMATS}")
        self.files = tuple(files)
        self.xlsx_sheets = list(xlsx_sheets)
        try:
            self.chart = Chart.model_validate(chart) if isinstance(chart, dict) else chart
        except ValueError as e:
            raise ValueError(f"{who}: chart: {e}") from None
        self.filename = filename
        self.deliver = list(deliver)
        if not self.deliver:
            raise ValueError(f"{who}: deliver= needs at least one destination (SlackReport, EmailReport)")
        names = [d.name for d in self.deliver]
        if len(set(names)) != len(names):
            raise ValueError(f"{who}: two destinations share a name {names}; pass name= to tell them apart")
        broken = nested_template_errors(self.deliver, "deliver")
        if broken:
            raise ValueError(f"{who}: {'; '.join(broken)}")
        if on_empty not in ON_EMPTY:
            raise ValueError(f"{who}: on_empty must be one of {ON_EMPTY}, got {on_empty!r}")
        self.on_empty = on_empty
        self.max_query_rows = max_query_rows
        try:
            self.statement_timeout = parse_duration(statement_timeout) if statement_timeout else None
        except ValueError as e:
            raise ValueError(f"{who}: statement_timeout: {e}") from None
        self.state_conn_id = state_conn_id
        if not (isinstance(queries, str) and has_jinja(queries)):
            self._spec()  # fail at DAG parse: unknown ops, missing fields, frames no step produces

    def _where_am_i(self) -> str:
        return where_am_i(self)

    def _spec(self) -> ReportSpec:
        try:
            # A transform may produce the report frame: only it knows the name.
            spec = parse(self.queries, self.steps, None if self.transform else self.report_frame,
                         context=self._where_am_i())
        except ReportSpecError as e:
            raise ValueError(str(e)) from None
        if self.transform is None:
            known = {q.name for q in spec.queries} | {s.into for s in spec.steps if s.into}
            unknown = [f for f in self.xlsx_sheets if f not in known]
            if unknown:
                raise ValueError(f"{self._where_am_i()}: xlsx_sheets names frames the report does not have: "
                                 f"{unknown} (frames: {', '.join(sorted(known))})")
        missing = [q.name for q in spec.queries if not (q.conn_id or self.conn_id)]
        if missing:
            raise ValueError(f"{self._where_am_i()}: queries {missing} name no conn_id and the operator has none")
        return spec

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_opsflow.reports.output import ReportRenderError, ReportTooLarge, render_report

        try:
            spec = self._spec()
        except ValueError as e:
            raise AirflowFailException(str(e)) from None
        frames, output = self._build(spec, self._query(spec), context)
        try:
            report = render_report(frames, output, self.title, self.description,
                                   self.files, self.chart, self.filename, self.xlsx_sheets)  # type: ignore[arg-type]
        except ReportRenderError as e:  # a chart column missing, a value a file cannot take: names file and column
            raise AirflowFailException(f"{self._where_am_i()}: rendering the report (frame {output!r}) failed: {e}; "
                                       "nothing was sent") from None
        except Exception as e:  # whatever else: the same data fails again, so no retry
            raise AirflowFailException(f"{self._where_am_i()}: rendering the report (frame {output!r}) failed: "
                                       f"{type(e).__name__}: {e}; nothing was sent") from e
        for note in report.notes:  # what a file could not carry as it is: also under the report's description
            self.log.warning("%s", note)
        summary: dict[str, Any] = {"title": self.title, "rows": report.rows, "columns": [str(c) for c in
                                                                                         report.frame.columns],
                                   "files": [{"name": a.filename, "bytes": len(a.content)}
                                             for a in report.attachments], "notes": report.notes,
                                   "delivered": [], "skipped": False}
        if report.empty and self.on_empty != "send":
            if self.on_empty == "fail":
                raise AirflowFailException(f"{self._where_am_i()}: the report {self.title!r} has no rows")
            self.log.info("the report %r has no rows: nothing sent (on_empty='skip')", self.title)
            return {**summary, "skipped": True}
        try:
            for d in self.deliver:  # every destination can take it, or nobody gets it
                d.check(report)
        except ReportTooLarge as e:
            raise AirflowFailException(f"{self._where_am_i()}: nothing sent: {e}") from None
        summary["delivered"] = self._send(report, context)
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/lineage.md): the tables each query reads on its connection, and the CRM objects
        its API queries read (``hubspot://<account>/<object>``...)."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_opsflow.lineage import api_dataset, sql_inputs, unique_datasets

        inputs: list[Any] = []
        for q in self._spec().queries:
            conn_id = str(q.conn_id or self.conn_id)
            if q.api is not None:
                inputs.append(api_dataset(str(q.system), conn_id, q.api))
            else:
                inputs += sql_inputs(conn_id, self._where_am_i(), sql=q.sql)
        return OperatorLineage(inputs=unique_datasets(inputs))

    def _query(self, spec: ReportSpec) -> dict[str, pd.DataFrame]:
        """Each query on its connection (read-only): a frame per query, or an error naming the query."""
        from airflow_opsflow.checks.session import QueryError, ReadOnlySession
        from airflow_opsflow.connections.sql import dialect_of, get_db_hook
        from airflow_opsflow.reports.build import column_kinds, frame_of

        frames: dict[str, pd.DataFrame] = {}
        for q in spec.queries:
            conn_id = str(q.conn_id or self.conn_id)
            staged = self._stage(q, conn_id) if q.api is not None else None
            if staged is not None:  # an API's records, staged in SQLite: the query runs there
                dialect, conn, sql = "sqlite", staged.connect(), q.sql or f"SELECT * FROM {staged.table}"  # noqa: S608
            else:
                hook = get_db_hook(conn_id, self._where_am_i())
                dialect = dialect_of(hook)
                conn = hook.get_conn()  # a connection that cannot be opened: a retryable error naming it (hooks.db)
                sql = str(q.sql)
            try:
                with ReadOnlySession(conn, dialect, self.statement_timeout, True) as session:
                    names, rows = session.query(sql, limit=self.max_query_rows + 1)
                    kinds = column_kinds(dialect, session.description)
            except QueryError as e:
                raise AirflowException(f"{self._where_am_i()}: query {q.name!r} on connection {conn_id!r} failed: "
                                       f"{e}; nothing was sent") from None
            finally:
                with contextlib.suppress(Exception):  # a connection already lost has nothing to close
                    conn.close()
                if staged is not None:
                    staged.remove()
            doubles = sorted({n for n in names if names.count(n) > 1})
            if doubles:
                raise AirflowFailException(f"{self._where_am_i()}: query {q.name!r} returns several columns named "
                                           f"{doubles}: give them distinct aliases")
            if len(rows) > self.max_query_rows:
                raise AirflowFailException(f"{self._where_am_i()}: query {q.name!r} returned more than "
                                           f"{self.max_query_rows:,} rows (max_query_rows); nothing was sent")
            frames[q.name] = frame_of(names, rows, kinds)
            self.log.info("query %r on %s: %d rows", q.name, conn_id, len(rows))
        return frames

    def _stage(self, q: Any, conn_id: str) -> Any:
        """An API query's records in a throwaway SQLite file (the caller removes it)."""
        from airflow_opsflow.core.api_source import ApiError
        from airflow_opsflow.core.staging import stage
        from airflow_opsflow.hooks.api_clients import api_client

        try:
            return stage(q.api.source(api_client(q.system, conn_id, self._where_am_i())))
        except ApiError as e:
            raise AirflowException(f"{self._where_am_i()}: query {q.name!r} could not read {q.api.describe()} "
                                   f"(connection {conn_id!r}): {e}; nothing was sent") from None

    def _build(self, spec: ReportSpec, frames: dict[str, pd.DataFrame],
               context: Context) -> tuple[dict[str, pd.DataFrame], str]:
        """The steps, then ``transform``; returns every frame and the name of the report's."""
        import pandas as pd

        from airflow_opsflow.reports.build import ReportBuildError, build

        try:
            frames = build(spec, frames)
        except ReportBuildError as e:
            raise AirflowFailException(f"{self._where_am_i()}: {e}") from None
        if self.transform is None:
            return frames, spec.result_frame
        try:
            out = self.transform(frames, context)
        except Exception as e:  # the DAG author's code: say whose it is (retried as before); the traceback follows
            raise AirflowException(f"{self._where_am_i()}: transform "
                                   f"{getattr(self.transform, '__name__', self.transform)!r} failed: "
                                   f"{type(e).__name__}: {e}") from e
        if isinstance(out, pd.DataFrame):
            return {**frames, "transform": out}, "transform"
        if isinstance(out, dict) and out and all(isinstance(v, pd.DataFrame) for v in out.values()):
            name = self.report_frame if self.report_frame in out else next(reversed(out))
            return {**frames, **out}, str(name)
        raise AirflowFailException(f"{self._where_am_i()}: transform must return a DataFrame or a dict of them, "
                                   f"got {type(out).__name__}")  # an empty dict too

    def _send(self, report: RenderedReport, context: Context) -> list[str]:
        repo = self._deliveries()
        ti = context["ti"]
        mapped = ti.map_index is not None and ti.map_index >= 0
        key = f"{ti.dag_id}/{ti.task_id}" + (f"[{ti.map_index}]" if mapped else "")
        done = repo.sent(key, ti.run_id, [d.name for d in self.deliver]) if repo else set()
        sent: list[str] = []
        for d in self.deliver:
            if d.name in done:
                self.log.info("already delivered to %s by an earlier try", d.name)
                continue
            try:
                detail = d.deliver(report)
            except Exception as e:
                reached = f" (delivered: {', '.join(sent)})" if sent else ""
                raise AirflowException(f"{self._where_am_i()}: delivering the report to {d.name} failed: "
                                       f"{type(e).__name__}: {e}{reached}; a retry sends only what is missing"
                                       ) from None
            if repo:
                repo.mark(key, ti.run_id, d.name, detail)
            sent.append(d.name)
            self.log.info("report %r delivered to %s", report.title, d.name)
        return sent

    def _deliveries(self) -> Any:
        from airflow.sdk import conf

        if not (self.state_conn_id or conf.get("opsflow", "state_conn_id", fallback="")):
            self.log.info("no state database: a retry of this task re-sends the report to every destination")
            return None
        from airflow_opsflow.connections.state import state_store
        from airflow_opsflow.reports.repo import ReportDeliveryRepo

        return ReportDeliveryRepo(state_store(self.state_conn_id, self._where_am_i()))
