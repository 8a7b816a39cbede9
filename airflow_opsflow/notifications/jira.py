"""Moved to :mod:`airflow_opsflow.alerts.jira`; this path keeps working."""

from airflow_opsflow.alerts.jira import JiraTicket, TicketNotCreated

__all__ = ["JiraTicket", "TicketNotCreated"]
