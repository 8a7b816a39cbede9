"""opsflow: operational data checks, alerts, tickets and reverse ETL for Apache Airflow.

Kept import-light on purpose: DAG files import operators from here on every parse.
"""

__version__ = "0.1.0"
