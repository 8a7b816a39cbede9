"""The check engine: specs -> SQL plan -> results. Imports no Airflow."""
