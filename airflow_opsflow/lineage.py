"""OpenLineage for opsflow's operators (docs/lineage.md): datasets named as the OpenLineage provider names
them, data-quality facets from check results, and the Asset URI schemes of the CRMs a sync writes to.

Everything here runs only when the OpenLineage provider calls an operator's
``get_openlineage_facets_on_complete``: the provider and its client are imported inside the functions, so
opsflow works (and parses DAGs cheaply) without them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_opsflow.core.results import CheckResult

# The CRMs a sync writes to, as Asset URI schemes: <scheme>://<account host>/<object>.
CRM_SCHEMES = ("hubspot", "salesforce", "zendesk")


@dataclass
class _CheckRecord:
    """common-sql's ``SQLCheckResult`` fields, for a common-sql older than 2.4 (which has none)."""

    name: str
    check_type: str
    success: bool
    severity: str = "error"
    column: str | None = None
    table: str | None = None
    expected: str | None = None
    actual: str | None = None
    content: str | None = None
    description: str | None = None
    params: dict[str, Any] | None = None


class SqlNaming:
    """One connection's OpenLineage namespace and table names, as the provider's SQL operators give them:
    the hook's ``get_openlineage_database_info`` (``postgres://host:5432``, ``mysql://host:3306``) and
    ``database.schema.table`` from the provider's SQL parser. SQLite, which the provider does not name, is
    ``sqlite://<file path>`` with its ``main`` schema."""

    def __init__(self, conn_id: str, owner: str = "") -> None:
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        from airflow_opsflow.connections.sql import get_db_hook

        hook = get_db_hook(conn_id, owner)
        conn = hook.get_connection(conn_id)
        try:
            info = hook.get_openlineage_database_info(conn)
        except Exception:  # a hook without it, or one needing another provider (Redshift's AWS)
            info = None
        self.upper = False
        if info is not None:
            from airflow.providers.openlineage.sqlparser import SQLParser

            self.namespace = SQLParser.create_namespace(info)
            self.database: str | None = info.database
            self.upper = bool(info.is_uppercase_names)
            self.dialect = hook.get_openlineage_database_dialect(conn)
            self.schema: str | None = hook.get_openlineage_default_schema()
        elif conn.conn_type == "sqlite":
            import os

            self.namespace = f"sqlite://{os.path.abspath(conn.host or '')}"
            self.database, self.dialect, self.schema = None, "sqlite", "main"
        else:
            self.namespace = f"{conn.conn_type}://{DbApiHook.get_openlineage_authority_part(conn)}"
            self.database, self.dialect, self.schema = conn.schema or None, "generic", None

    def _dataset(self, meta: Any) -> Any:
        from airflow.providers.common.compat.openlineage.facet import Dataset

        name = ".".join(p for p in (meta.database or self.database, meta.schema or self.schema, meta.name) if p)
        return Dataset(namespace=self.namespace, name=name.upper() if self.upper else name)

    def query(self, sql: str) -> list[Any]:
        """The tables a query reads (and writes), parsed by the provider's SQL parser."""
        from airflow.providers.openlineage.sqlparser import SQLParser

        parser = SQLParser(dialect=self.dialect, default_schema=self.schema)
        result = parser.parse(parser.split_sql_string(sql))
        if not result:
            return []
        return [self._dataset(t) for t in [*result.in_tables, *result.out_tables]]

    def table(self, name: str) -> Any | None:
        """The dataset of a table as written in a spec (``orders``, ``sales.orders``), None when it is no
        table name (a check's label)."""
        found = self.query(f"SELECT 1 FROM {name}")  # noqa: S608 (parsed, never run)
        return found[0] if len(found) == 1 else None


def _record_type() -> Any:
    try:
        from airflow.providers.common.sql.operators.sql import SQLCheckResult  # common-sql >= 2.4

        return SQLCheckResult
    except ImportError:
        return _CheckRecord


def check_records(results: Iterable[CheckResult]) -> list[Any]:
    """Check results as common-sql's check-result records (``SQLCheckResult``), the shape its check operators
    keep in ``check_results`` and turn into OpenLineage assertions."""
    import json

    record = _record_type()
    out = []
    for r in results:
        params = {"status": r.status, "violating_count": r.violating_count, "rows_checked": r.rows_checked,
                  "threshold": r.threshold, "where": r.where}
        out.append(record(
            name=r.name, check_type=r.kind, success=r.status == "pass", severity=r.severity, column=r.column,
            table=r.table, expected=r.expected or None,
            actual=None if r.observed is None else json.dumps(r.observed, default=str),
            content=";\n".join(r.sql) or None, description=r.description,
            params={k: v for k, v in params.items() if v is not None}))
    return out


def _assertions(records: Sequence[Any]) -> Any:
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq

    return dq.DataQualityAssertionsDatasetFacet(assertions=[
        dq.Assertion(assertion=r.check_type, success=r.success, column=r.column, severity=r.severity, name=r.name,
                     description=r.description, expected=r.expected, actual=r.actual, content=r.content,
                     contentType="sql" if r.content else None, params=r.params)
        for r in records])


def _metrics(results: Sequence[CheckResult]) -> Any | None:
    """rowCount where a check counted the whole table (no ``where``)."""
    from openlineage.client.facet_v2 import data_quality_metrics_input_dataset as dqm

    counts = [r.rows_checked for r in results if r.rows_checked is not None and not r.where]
    return dqm.DataQualityMetricsInputDatasetFacet(rowCount=max(counts), columnMetrics={}) if counts else None


def check_lineage(results: Sequence[CheckResult], naming: SqlNaming | None) -> OperatorLineage:
    """Each checked table as an input dataset carrying one assertion per check
    (``DataQualityAssertionsDatasetFacet``) and its row count (``DataQualityMetricsInputDatasetFacet``); checks
    on no table of this connection (or without a connection: dbt without ``conn_id``) go to the run's
    ``test`` facet, as common-sql does with checks it cannot place."""
    from airflow.providers.common.compat.openlineage.facet import InputDataset
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.facet_v2 import test_run

    by_table: dict[str, list[CheckResult]] = {}
    run_level: list[CheckResult] = []
    for r in results:
        if r.table and naming is not None:
            by_table.setdefault(r.table, []).append(r)
        else:
            run_level.append(r)
    datasets: dict[tuple[str, str], tuple[Any, list[CheckResult]]] = {}
    for table, group in by_table.items():
        dataset = naming.table(table) if naming is not None else None
        if dataset is None:
            run_level += group
            continue
        key = (dataset.namespace, dataset.name)  # "orders" and "public.orders" are one dataset
        datasets.setdefault(key, (dataset, []))[1].extend(group)
    inputs = []
    for dataset, group in datasets.values():
        metrics = _metrics(group)
        inputs.append(InputDataset(namespace=dataset.namespace, name=dataset.name,
                                   facets={"dataQualityAssertions": _assertions(check_records(group))},
                                   inputFacets={"dataQualityMetrics": metrics} if metrics is not None else {}))
    run_facets: dict[str, Any] = {}
    if run_level:
        run_facets["test"] = test_run.TestRunFacet(tests=[
            test_run.TestExecution(name=r.name, status="pass" if r.success else "fail", severity=r.severity,
                                   type=r.check_type, description=r.description, expected=r.expected,
                                   actual=r.actual, content=r.content, contentType="sql" if r.content else None,
                                   params={"tested_column": r.column, "tested_table": r.table, **(r.params or {})})
            for r in check_records(run_level)])
    return OperatorLineage(inputs=inputs, run_facets=run_facets)


def sql_inputs(conn_id: str, owner: str, *, sql: str | None = None, table: str | None = None) -> list[Any]:
    """The datasets a source query or table reads."""
    naming = SqlNaming(conn_id, owner)
    if table:
        dataset = naming.table(table)
        return [dataset] if dataset is not None else []
    return unique_datasets(naming.query(sql or ""))


def unique_datasets(datasets: Iterable[Any]) -> list[Any]:
    """Each dataset once (by namespace and name), in first-seen order."""
    seen: dict[tuple[str, str], Any] = {}
    for d in datasets:
        seen.setdefault((d.namespace, d.name), d)
    return list(seen.values())


def _host(conn_id: str, default: str = "") -> str:
    """A connection's host without scheme or path (``api.hubapi.com``, ``acme.zendesk.com``)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    host = (conn.host or "").strip()
    parsed = urlsplit(host if "://" in host else f"//{host}")
    name = parsed.hostname or default
    return f"{name}:{parsed.port}" if parsed.port else name


def _salesforce_instance(conn_id: str) -> str:
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson
    url = extra.get("instance_url") or extra.get("extra__salesforce__instance_url") or conn.host or ""
    if url:
        return urlsplit(url if "://" in url else f"//{url}").netloc
    domain = extra.get("domain") or extra.get("extra__salesforce__domain") or "login"
    # The host simple-salesforce logs in at (``https://<domain>.salesforce.com``; a domain may carry a port).
    return urlsplit(f"https://{domain}.salesforce.com").netloc


def crm_dataset(system: str, conn_id: str, object_name: str) -> Any:
    """``hubspot://<portal id (extra portal_id) or API host>/<object>``, ``salesforce://<instance>/<sobject>``,
    ``zendesk://<subdomain>/<object>``: the Asset URI of the same object (``sanitize_uri``)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.sdk import BaseHook

    if system == "hubspot":
        portal = BaseHook.get_connection(conn_id).extra_dejson.get("portal_id")
        account = str(portal) if portal else _host(conn_id, "api.hubapi.com")
    elif system == "salesforce":
        account = _salesforce_instance(conn_id)
    elif system == "zendesk":
        account = _host(conn_id).split(".zendesk.com")[0]
    else:
        raise ValueError(f"no lineage naming for system {system!r}")
    return Dataset(namespace=f"{system}://{account.lower()}", name=str(object_name))


def api_dataset(system: str, conn_id: str, api: Any) -> Any:
    """What a report's API query reads: the HubSpot object, the SOQL query's object, the Zendesk export."""
    import re

    if system == "salesforce":
        found = re.search(r"\bFROM\s+([A-Za-z0-9_]+)", api.soql, re.IGNORECASE)
        return crm_dataset(system, conn_id, found.group(1) if found else "unknown")
    return crm_dataset(system, conn_id, api.object if system == "hubspot" else api.export)


def destination_dataset(destination: Any) -> Any:
    """A sync destination as an OpenLineage dataset: ``hubspot://<portal or host>/<object>``,
    ``salesforce://<instance>/<sobject>``, ``zendesk://<subdomain>/<object>``, the endpoint's
    ``http(s)://host/path`` or the destination table. Told apart by class name: the declarations are a
    sibling layer of this module."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    kind = type(destination).__name__
    if kind == "DatabaseTable":
        dataset = SqlNaming(destination.conn_id).table(destination.table)
        if dataset is not None:
            return dataset
        raise ValueError(f"table {destination.table!r} is not a table name")
    if kind == "HubSpotObjects":
        return crm_dataset("hubspot", destination.hubspot_conn_id, destination.object_type)
    if kind == "SalesforceObjects":
        return crm_dataset("salesforce", destination.conn_id, destination.object_name)
    if kind == "ZendeskObjects":
        return crm_dataset("zendesk", destination.conn_id, destination.object_type)
    if kind == "HttpEndpoint":
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(destination.http_conn_id)
        base = (conn.host or "").strip()
        if "://" not in base:
            base = f"{conn.schema or 'http'}://{base}" + (f":{conn.port}" if conn.port else "")
        url = urlsplit(base)
        # A per-record endpoint (``/accounts/{{ record.id }}``) is named by its fixed part.
        path = (url.path.rstrip("/") + "/" + destination.endpoint.split("{", 1)[0].lstrip("/")).rstrip("/")
        return Dataset(namespace=f"{url.scheme}://{url.netloc}", name=path or "/")
    raise ValueError(f"no lineage naming for destination {kind}")


# -- Asset URIs of the CRM schemes (get_provider_info "asset-uris") ------------------------------------------


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """``hubspot://<portal or host>/<object>`` (and ``salesforce``/``zendesk``): an account and one object,
    lower-cased host; Airflow calls this when an ``Asset`` with one of these schemes is created."""
    if not uri.netloc:
        raise ValueError(f"URI format {uri.scheme}:// must contain the account (portal, instance or subdomain)")
    parts = [p for p in uri.path.split("/") if p]
    if len(parts) != 1:
        raise ValueError(f"URI format {uri.scheme}:// must contain exactly one object: "
                         f"{uri.scheme}://<account>/<object>, got path {uri.path!r}")
    return uri._replace(netloc=uri.netloc.lower(), path=f"/{parts[0]}", query="", fragment="")


def create_asset(*, scheme: str, account: str, object_name: str, extra: dict[str, Any] | None = None) -> Any:
    from airflow.sdk import Asset

    if scheme not in CRM_SCHEMES:
        raise ValueError(f"scheme must be one of {CRM_SCHEMES}, got {scheme!r}")
    return Asset(uri=f"{scheme}://{account}/{object_name}", extra=extra)


def convert_asset_to_openlineage(asset: Any, lineage_context: Any) -> Any:
    """An Asset of a CRM scheme as the OpenLineage dataset a sync's lineage names."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parsed = urlsplit(asset.uri)
    return Dataset(namespace=f"{parsed.scheme}://{parsed.netloc}", name=parsed.path.strip("/"))
