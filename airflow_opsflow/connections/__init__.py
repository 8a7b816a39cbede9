"""From an Airflow connection to what the engines take: a DB-API hook and its dialect, an HTTP target,
the state store. Functions, not hooks."""
