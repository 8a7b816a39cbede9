"""Airflow notifiers (``BaseNotifier``) of opsflow."""
