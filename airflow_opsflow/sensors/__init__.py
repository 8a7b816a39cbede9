"""Airflow sensors of opsflow."""
