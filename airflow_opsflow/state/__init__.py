"""opsflow state store: persistent state in the user's own database. Imports no Airflow."""
