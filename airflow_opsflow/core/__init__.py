"""Shared building blocks with no Airflow and no opsflow imports outside this package: SQL parts and
dialects, identifiers, durations and business calendars, Jinja placeholders, result types, DB-API cursor
and driver-error helpers, the SQL row source, text cutting and ``Retry-After`` parsing."""
