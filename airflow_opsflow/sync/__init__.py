"""The reverse-ETL engine (no Airflow imports): source plan, diff against the state store, delivery.

Data flows one way: spec -> :mod:`plan` (SQL) -> :mod:`diff` (changes) -> :mod:`deliver` (batches to a
:class:`~airflow_opsflow.sync.destinations.base.DestinationClient`) -> confirmations recorded in the state store.
"""
