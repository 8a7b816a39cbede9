"""opsflow's testing kit for DAG authors: real Airflow runs, throwaway databases, fake Slack and SMTP.

* :func:`~airflow_opsflow_testing.dag_runner.airflow_home` and :func:`~.dag_runner.run_dag`;
* :class:`~airflow_opsflow_testing.postgres.ThrowawayPostgres`, :class:`~.mariadb.ThrowawayMariaDB`;
* :class:`~airflow_opsflow_testing.slack_server.FakeSlack`, :class:`~.smtp_server.FakeSmtp`,
  :class:`~.jira_server.FakeJira` and the pytest fixtures of :mod:`~airflow_opsflow_testing.pytest_plugin`
  (``fake_slack``, ``slack_conn``, ``fake_smtp``, ``fake_jira``, ``jira_conn``...);
* :mod:`~airflow_opsflow_testing.sample_data` (operational data with planted problems).
"""

from airflow_opsflow_testing.dag_runner import DagRunResult, airflow_home, run_dag

__all__ = ["DagRunResult", "airflow_home", "run_dag"]
