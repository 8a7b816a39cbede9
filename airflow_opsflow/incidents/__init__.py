"""The incident lifecycle and alert routing engine. Imports no Airflow."""
