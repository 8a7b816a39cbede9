"""Moved to :mod:`airflow_opsflow.alerts.slack`; this path keeps working."""

from airflow_opsflow.alerts.slack import SlackAlert

__all__ = ["SlackAlert"]
