"""Moved to :mod:`airflow_opsflow.report_deliveries`; this path keeps working."""

from airflow_opsflow.report_deliveries import EmailReport, ReportDelivery, SlackReport

__all__ = ["EmailReport", "ReportDelivery", "SlackReport"]
