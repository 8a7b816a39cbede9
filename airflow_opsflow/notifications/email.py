"""Moved to :mod:`airflow_opsflow.alerts.email`; this path keeps working."""

from airflow_opsflow.alerts.email import EmailAlert

__all__ = ["EmailAlert"]
