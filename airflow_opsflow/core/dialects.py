"""Which sqlglot dialect a connection speaks, and what that dialect can do."""

from __future__ import annotations

# Airflow connection types and SQLAlchemy dialect names -> sqlglot dialects.
_ALIASES = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "snowflake": "snowflake",
    "bigquery": "bigquery",
    "google_cloud_platform": "bigquery",
    "gcpbigquery": "bigquery",
    "mssql": "tsql",
    "tsql": "tsql",
    "oracle": "oracle",
    "redshift": "redshift",
    "trino": "trino",
    "presto": "presto",
    "databricks": "databricks",
    "spark": "spark",
    "hive": "hive",
    "hive_cli": "hive",
    "hiveserver2": "hive",
    "duckdb": "duckdb",
    "clickhouse": "clickhouse",
    "teradata": "teradata",
    "exasol": "exasol",
    "vertica": "postgres",
}

# Dialects with a native regular-expression predicate that sqlglot renders (SQLite has only an
# optional REGEXP operator that needs a user function, T-SQL none before 2025).
REGEX_DIALECTS = frozenset(
    {"postgres", "redshift", "mysql", "snowflake", "bigquery", "duckdb", "oracle", "trino", "presto",
     "databricks", "spark", "hive", "clickhouse", "teradata"}
)


class UnsupportedDialectError(ValueError):
    pass


def to_sqlglot_dialect(name: str) -> str:
    """Map an Airflow connection type or SQLAlchemy dialect name to a sqlglot dialect."""
    key = name.lower().split("+")[0]
    if key in _ALIASES:
        return _ALIASES[key]
    from sqlglot.dialects.dialect import Dialect

    try:
        Dialect.get_or_raise(key)
    except ValueError:
        raise UnsupportedDialectError(
            f"unknown SQL dialect {name!r}: pass dialect= (a sqlglot dialect such as 'postgres')"
        ) from None
    return key
