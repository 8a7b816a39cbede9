"""Former home of the alert routes and report deliveries, kept so that DAGs written against it still
import: routes are in :mod:`airflow_opsflow.alerts`, report deliveries in
:mod:`airflow_opsflow.report_deliveries`, the notifier in :mod:`airflow_opsflow.notifiers`."""
