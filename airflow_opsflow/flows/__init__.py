"""Airflow-free orchestration of the engines: run a check suite (SQL checks, monitors, entity
tracking), advance incidents and deliver their alerts. The operators call flows; flows call engines."""
