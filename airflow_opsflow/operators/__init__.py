"""Airflow operators of opsflow."""
