"""Reconcile checks with ``entity``: each violating key tracked across runs (new, still open, resolved), on
SQLite sides in two files (two connections) and a real state store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_opsflow.checks.loader import CheckSpecError, load_suite
from airflow_opsflow.checks.monitor_spec import ReconcileCheck
from airflow_opsflow.core.results import CheckResult
from airflow_opsflow.flows.check_suite import EntityTracking, run_suite
from airflow_opsflow.incidents.entity_repo import EntityRepo
from airflow_opsflow.monitors.reconcile import reconcile, run_reconcile
from airflow_opsflow.state.store import StateStore

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a fixed instant: the runs' time, never the wall clock


class Sides:
    """The warehouse (left, the suite's own connection) and the CRM (right, connection ``crm``), each a
    SQLite file, and a state store that keeps the entities between runs."""

    def __init__(self, where: Path) -> None:
        self.paths = {None: where / "warehouse.db", "crm": where / "crm.db"}
        self.store = StateStore(lambda: sqlite3.connect(where / "state.db"), "sqlite")
        self.runs = 0

    def sql(self, conn_id: str | None, *statements: str) -> None:
        conn = sqlite3.connect(self.paths[conn_id])
        for statement in statements:
            conn.execute(statement)
        conn.commit()
        conn.close()

    def connect(self, conn_id: str | None) -> tuple[Any, str]:
        path = self.paths[conn_id]
        return (lambda: sqlite3.connect(path)), "sqlite"

    def check(self, **spec: Any) -> dict[str, Any]:
        return {"kind": "reconcile", "name": "customers_in_crm", "left": {"table": "customers", "label": "warehouse"},
                "right": {"conn_id": "crm", "table": "accounts", "label": "CRM"}, "key": "customer_id", **spec}

    def run(self, check: dict[str, Any], hours: float = 0) -> CheckResult:
        """One run of the check (its own run id), ``hours`` after T0."""
        self.runs += 1
        tracking = EntityTracking(EntityRepo(self.store), f"run{self.runs}", lambda name: f"subject/{name}")
        conn = sqlite3.connect(self.paths[None])
        try:
            [result] = run_suite(conn, load_suite([check]), "sqlite", connect=self.connect, entities=tracking,
                                 metrics_at=T0 + timedelta(hours=hours))
        finally:
            conn.close()
        return result


@pytest.fixture
def sides(tmp_path: Path) -> Iterator[Sides]:
    s = Sides(tmp_path)
    s.sql(None, "CREATE TABLE customers (customer_id TEXT, tier TEXT, arr NUMERIC, paying_since TEXT)",
          "INSERT INTO customers VALUES ('C-1', 'gold', 1200.50, '2026-03-01 12:00:00'), "
          "('C-2', 'silver', 300, '2026-02-28 12:00:00'), ('C-3', 'gold', 900, NULL), ('C-4', 'gold', 50, NULL)")
    s.sql("crm", "CREATE TABLE accounts (customer_id TEXT, tier TEXT, arr NUMERIC)",
          "INSERT INTO accounts VALUES ('C-2', 'gold', 7), ('C-3', 'gold', 900), ('C-4', 'gold', 50), "
          "('C-9', 'gold', 42)")
    yield s
    s.store.close()


def listed(result: CheckResult) -> list[tuple[str, str]]:
    return [(x["key"], x["state"]) for x in (result.entities or {})["listed"]]


def counts(result: CheckResult) -> tuple[int, int, int]:
    e = result.entities or {}
    return e["new"], e["still_open"], e["resolved"]


def test_missing_and_different_customers_are_new_then_still_open_then_resolved(sides: Sides) -> None:
    check = sides.check(compare=["tier"], expect="left_in_right",
                        entity={"amount": "arr", "since": "paying_since", "noun": "customer"})
    first = sides.run(check)
    assert first.status == "fail" and first.violating_count == 2
    assert counts(first) == (2, 0, 0) and listed(first) == [("C-2", "new"), ("C-1", "new")]  # oldest first
    e = first.entities or {}
    assert e["at_stake"] == 1500.5 and e["complete"] is True and e["key_name"] == "customer_id"
    assert first.message == ("2 new customers (oldest 48 h) · 1,500.50 at stake. 4 keys: 1 only on warehouse; "
                             "1 mismatched (tier 1); 1 more on CRM (expected)")

    # C-1 reaches the CRM, C-2 stays off, C-3's tier changes there: one resolved, one still open, one new.
    sides.sql("crm", "INSERT INTO accounts VALUES ('C-1', 'gold', 0)",
              "UPDATE accounts SET tier = 'silver' WHERE customer_id = 'C-3'")
    second = sides.run(check, hours=6)
    assert counts(second) == (1, 1, 1) and (second.entities or {})["resolved_keys"] == ["C-1"]
    assert listed(second) == [("C-2", "open"), ("C-3", "new")]
    assert (second.entities or {})["at_stake"] == 1200.0  # the warehouse's arr, not the CRM's
    assert second.message.startswith("1 new customer, 1 still open (oldest 54 h) · 1,200.00 at stake · 1 resolved")

    sides.sql("crm", "UPDATE accounts SET tier = 'silver' WHERE customer_id = 'C-2'",
              "UPDATE accounts SET tier = 'gold' WHERE customer_id = 'C-3'")
    third = sides.run(check, hours=7)
    assert third.status == "pass" and counts(third) == (0, 0, 2)
    assert third.message == "no open customers · 2 resolved. 4 keys agree; 1 more on CRM (expected)"


def test_disjoint_tracks_the_keys_on_both_sides(sides: Sides) -> None:
    sides.sql(None, "CREATE TABLE churned (organization_id INTEGER, arr NUMERIC)",
              "INSERT INTO churned VALUES (1, 10), (2, 20), (3, 30), (NULL, 99)")
    sides.sql("crm", "CREATE TABLE open_tickets (organization_id INTEGER, ticket INTEGER)",
              "INSERT INTO open_tickets VALUES (2, 100), (2, 101), (3, 102), (4, 103), (NULL, 104)")
    check = {"kind": "reconcile", "name": "no_open_ticket_of_a_churned_account",
             "left": {"table": "churned", "label": "churned"}, "right": {"conn_id": "crm", "table": "open_tickets"},
             "key": "organization_id", "expect": "disjoint", "entity": {"amount": "arr", "noun": "churned account"}}
    first = sides.run(check)
    assert first.status == "fail" and counts(first) == (2, 0, 0)
    assert sorted(k for k, _ in listed(first)) == ["2", "3"] and (first.entities or {})["at_stake"] == 50.0
    sides.sql("crm", "DELETE FROM open_tickets WHERE organization_id = 3")
    second = sides.run(check, hours=1)
    assert counts(second) == (0, 1, 1) and listed(second) == [("2", "open")]


def test_match_tracks_keys_on_either_side_and_duplicates(sides: Sides) -> None:
    sides.sql(None, "INSERT INTO customers VALUES ('C-4', 'gold', 50, NULL)")  # C-4 twice on the left
    check = sides.check(compare=["tier"], entity={"amount": "arr"})
    result = sides.run(check)
    assert result.violating_count == 4  # C-1 left only, C-2 off, C-4 twice, C-9 right only
    assert sorted(k for k, _ in listed(result)) == ["C-1", "C-2", "C-4", "C-9"]
    # A key only on the right takes its amount from the right's column of that name.
    amounts = {x["key"]: x["amount"] for x in (result.entities or {})["listed"]}
    assert amounts == {"C-1": 1200.5, "C-2": 300.0, "C-4": 50.0, "C-9": 42.0}

    sides.sql("crm", "ALTER TABLE accounts DROP COLUMN arr")  # the right has no such column: no amount
    right_only = sides.run(sides.check(entity={"amount": "arr"}), hours=1)
    assert {x["key"]: x["amount"] for x in (right_only.entities or {})["listed"]}["C-9"] is None


def test_null_keys_are_no_entities(sides: Sides) -> None:
    sides.sql(None, "INSERT INTO customers VALUES (NULL, 'gold', 10, NULL), (NULL, 'gold', 20, NULL)")
    check = sides.check(compare=["tier"], expect="left_in_right", entity={"amount": "arr"})
    result = sides.run(check)
    assert result.violating_count == 4  # C-1, C-2 and the two NULL keys
    assert counts(result) == (2, 0, 0) and (result.entities or {})["at_stake"] == 1500.5


def test_the_list_is_cut_at_max_entities_in_key_order(sides: Sides) -> None:
    sides.sql(None, "DELETE FROM customers",
              *[f"INSERT INTO customers VALUES ('K-{n}', 'gold', {n}, NULL)" for n in range(1, 7)])
    check = sides.check(expect="left_in_right", entity={"amount": "arr", "max_entities": 2})
    reconciled = reconcile(ReconcileCheck.model_validate(check), sides.connect)
    assert reconciled.entities == [("K-1", 1), ("K-2", 2), ("K-3", 3)]  # max_entities + 1: the cut shows
    assert run_reconcile(ReconcileCheck.model_validate(check), sides.connect).violating_count == 6  # as before

    first = sides.run(check)
    e = first.entities or {}
    assert counts(first) == (2, 0, 0) and e["complete"] is False and e["at_stake"] == 3.0
    assert "list cut at max_entities" in first.message
    sides.sql("crm", "INSERT INTO accounts VALUES ('K-1', 'gold', 1)")  # K-1 resolves, but the list is cut
    second = sides.run(check, hours=1)
    assert counts(second) == (1, 2, 0)  # K-3 new; K-1, not seen by a cut list, stays open
    assert sorted(k for k, _ in listed(second)) == ["K-1", "K-2", "K-3"]


def test_group_differences_are_no_entities(sides: Sides) -> None:
    sides.sql("crm", "INSERT INTO accounts VALUES ('C-1', 'gold', 1200.50)",
              "UPDATE accounts SET tier = 'silver', arr = 299.6 WHERE customer_id = 'C-2'",
              "DELETE FROM accounts WHERE customer_id = 'C-9'")
    check = sides.check(compare=[{"column": "arr", "tolerance": 0.5}], group_by=["tier"],
                        entity={"amount": "arr"})
    result = sides.run(check)
    assert result.status == "fail" and result.violating_count == 0  # each key within 0.5; silver's sum is not
    assert "1 of 2 groups off" in result.message and counts(result) == (0, 0, 0)


def test_entity_key_in_another_order_and_numbers_of_either_side(sides: Sides) -> None:
    sides.sql(None, "CREATE TABLE lines (region TEXT, n INTEGER, amount NUMERIC)",
              "INSERT INTO lines VALUES ('EU', 1, 5), ('EU', 2, 6), ('US', 1, 7)")
    sides.sql("crm", "CREATE TABLE lines (region TEXT, n REAL, amount NUMERIC)",
              "INSERT INTO lines VALUES ('EU', 1.0, 5), ('EU', 3.0, 9)")
    check = {"kind": "reconcile", "name": "lines", "left": {"table": "lines"},
             "right": {"conn_id": "crm", "table": "lines"}, "key": ["region", "n"], "compare": ["amount"],
             "entity": {"key": ["n", "region"], "amount": "amount"}}
    first = sides.run(check)
    assert sorted(k for k, _ in listed(first)) == ["1 / US", "2 / EU", "3 / EU"]  # in entity.key's order
    # EU 3 (3.0 only on the right) reaches the left with another amount: the same entity, now seen from the
    # left's integer 3; EU 2 reaches the right as 2.0 and resolves.
    sides.sql(None, "INSERT INTO lines VALUES ('EU', 3, 8)")
    sides.sql("crm", "INSERT INTO lines VALUES ('EU', 2.0, 6)")
    second = sides.run(check, hours=1)
    assert counts(second) == (0, 2, 1) and (second.entities or {})["resolved_keys"] == ["2 / EU"]
    assert {x["key"]: x["amount"] for x in (second.entities or {})["listed"]} == {"3 / EU": 8.0, "1 / US": 7.0}


# -- the spec ----------------------------------------------------------------------------------------


def _reconcile(**spec: Any) -> list[dict[str, Any]]:
    return [{"kind": "reconcile", "name": "r", "left": {"table": "a"}, "right": {"table": "b"}, "key": "id",
             **spec}]


def test_entity_key_defaults_to_the_key() -> None:
    (_, check), = load_suite(_reconcile(key=["region", "id"], entity={"noun": "account"})).all_checks()
    assert check.entity is not None and check.entity.key == ["region", "id"]


@pytest.mark.parametrize(("spec", "message"), [
    ({"entity": {"key": "other"}},
     r"check 'r' \(reconcile\): entity.key \(other\) must be the check's key \(id\)"),
    ({"key": ["region", "id"], "entity": {"key": "id"}}, r"entity.key \(id\) must be the check's key \(region, id\)"),
    ({"left": {"sql": "SELECT id, tier FROM customers"}, "entity": {"amount": "arr"}},
     r"check 'r' \(reconcile\): entity.amount: column 'arr' is not among the left side's columns \(id, tier\)"),
    ({"left": {"sql": "SELECT c.id, c.tier AS t FROM customers c"}, "entity": {"since": "tier"}},
     r"entity.since: column 'tier' is not among the left side's columns \(id, t\)"),
    ({"left": {"hubspot": {"object": "companies", "properties": ["domain"]}}, "key": "domain",
      "entity": {"amount": "arr"}},
     r"entity.amount: column 'arr' is not among the left side's columns \(id, domain\); amount is read from the "
     r"left side \(HubSpot companies\)"),
    ({"left": {"salesforce": {"soql": "SELECT Id, Tier__c FROM Account"}}, "key": "Id",
      "entity": {"amount": "ARR__c"}}, r"entity.amount: column 'ARR__c' is not among"),
    ({"entity": {"amount": "arr", "escalate_above": 5, "key": "id", "since": "arr"}},
     r"field 'entity': .*entity columns must differ"),
])
def test_entity_errors_name_the_check_and_field_when_parsed(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(CheckSpecError, match=message):
        load_suite(_reconcile(**spec))


@pytest.mark.parametrize("left", [
    {"table": "customers"},  # only the database knows a table's columns
    {"sql": "SELECT * FROM customers"},
    {"sql": "SELECT id, SUM(x) FROM customers GROUP BY id"},  # an unnamed column
    {"sql": "SELECT id, {{ params.amount }} AS arr FROM customers"},  # still to be rendered
    {"sql": "SELECT id, ARR AS Arr FROM customers"},  # names compare case-insensitively
    {"salesforce": {"soql": "SELECT Id, SUM(Amount) arr FROM Opportunity GROUP BY Id"}},
])
def test_columns_known_only_when_read_are_checked_when_the_check_runs(left: dict[str, Any]) -> None:
    load_suite(_reconcile(left=left, entity={"amount": "arr"}))


def test_an_amount_column_missing_at_run_time_is_an_error_naming_the_field(sides: Sides) -> None:
    result = sides.run(sides.check(entity={"amount": "revenue"}))
    assert result.status == "error"
    assert result.message.startswith("entity.amount: column 'revenue' not found on warehouse (columns: customer_id,")


def test_a_failing_amount_value_is_a_tracking_error(sides: Sides) -> None:
    sides.sql(None, "UPDATE customers SET arr = 'lots' WHERE customer_id = 'C-1'")
    result = sides.run(sides.check(expect="left_in_right", entity={"amount": "arr"}))
    assert result.status == "error" and "entity tracking: reading its entities failed: the amount 'lots'" in \
        result.message
