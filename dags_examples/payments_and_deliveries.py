"""Scenarios 1 and 2: payments ops and logistics ops checks on the production database.

Every 15 minutes: wait until payments are flowing, then check payments (failed share in the last
hour, negative amounts, unknown customers), deliveries (stuck in transit for more than 48 hours) and
invoices (totals that do not add up, duplicate numbers). Checks are read-only and each table is
scanned once, however many checks it has.

Each failing check is an incident: Slack (``#ops``) and email hear about it once when it opens, and
again when it resolves, in the same Slack thread (stuck deliveries are tracked one by one: new ones
update the incident, each resolves when delivered); error-level incidents also get one Jira ticket (project
OPS), closed when the data is fixed. Incidents live in the state database named by
``[opsflow] state_conn_id``.

The connection is a DAG param so the same DAG runs against the demo's SQLite database, the test
PostgreSQL, or your production replica: trigger with ``{"conn_id": "my_replica"}``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.alerts.email import EmailAlert
from airflow_opsflow.alerts.jira import JiraTicket
from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.operators.data_check import DataCheckOperator
from airflow_opsflow.sensors.data_condition import DataConditionSensor

CONN = "{{ params.conn_id }}"
# The channel is templated (a param: a staging deployment triggers with {"ops_channel": "#ops-staging"}); the
# route's name stays fixed, so its pending alerts keep their id whatever channel a run renders.
OPS_SLACK = SlackAlert(conn_id="slack_api_default", channel="{{ params.ops_channel }}", name="ops_slack",
                       mask_columns=("customer_id",))
PAYMENTS_EMAIL = EmailAlert(to=["payments-ops@example.com"], conn_id="smtp_default", min_severity="error")
FINANCE_EMAIL = EmailAlert(to=["finance-ops@example.com"], conn_id="smtp_default")
OPS_TICKETS = JiraTicket(project="OPS", conn_id="opsflow_jira_default", min_severity="error", labels=("ops",))
CUTOFF_48H = "{{ (dag_run.run_after - macros.timedelta(hours=48)).strftime('%Y-%m-%d %H:%M:%S') }}"

with DAG(
    dag_id="ops_payments_and_deliveries",
    schedule="*/15 * * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"conn_id": Param("ops_db", type="string", description="SQL connection of the ops database"),
            "ops_channel": Param("#ops", type="string", description="Slack channel of the ops team")},
    tags=["opsflow", "example", "payments", "logistics"],
    doc_md=__doc__,
) as dag:
    wait_for_payments = DataConditionSensor(
        task_id="wait_for_payments",
        conn_id=CONN,
        table="payments",
        freshness_column="created_at",
        max_age="2h",
        poke_interval=60,
        timeout=30 * 60,
        mode="reschedule",
    )

    check_payments = DataCheckOperator(
        task_id="check_payments",
        conn_id=CONN,
        checks="checks/payments.yml",
        statement_timeout="2m",
        alerts=[OPS_TICKETS, OPS_SLACK, PAYMENTS_EMAIL],
    )

    check_deliveries = DataCheckOperator(
        task_id="check_deliveries",
        conn_id=CONN,
        table="deliveries",
        checks=[
            {
                "name": "no_stuck_deliveries",
                "kind": "expression",
                "where": "status = 'in_transit'",
                "expression": f"status_changed_at >= '{CUTOFF_48H}'",
                "on_empty": "pass",  # nothing in transit is fine
                "sample_columns": ["id", "order_ref", "carrier", "status_changed_at"],
                "description": "Deliveries in transit for more than 48 hours (SLA breach)",
                "owner": "logistics-ops",
                # Each stuck delivery is followed on its own: the alert says how many are new, how many
                # still stuck and for how long; a delivery getting stuck later updates the incident.
                # (The 48 h SLA is the check itself: every entity here is already past it.)
                "entity": {"key": "id", "since": "status_changed_at", "noun": "stuck delivery"},
            },
            {"name": "known_delivery_status", "kind": "accepted_values", "column": "status",
             "values": ["created", "in_transit", "delivered", "returned"]},
            {"name": "delivery_customer_exists", "kind": "foreign_key", "column": "customer_id",
             "to_table": "customers", "to_column": "id", "severity": "warn"},
        ],
        alerts=[OPS_TICKETS, OPS_SLACK],
    )

    check_invoices = DataCheckOperator(
        task_id="check_invoices",
        conn_id=CONN,
        checks="checks/invoices.yml",
        alerts=[FINANCE_EMAIL],
    )

    wait_for_payments >> [check_payments, check_deliveries, check_invoices]
