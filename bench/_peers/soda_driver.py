"""Soda Core driver: runs the 13-assertion suite with ``soda-core-postgres`` (own venv, see checks.py).

Usage (by the benchmark): ``venv-soda/bin/python soda_driver.py URI``, then the line protocol of
``_protocol.py``. Only ``scan.execute()`` is timed; building the Scan object from YAML is not.
"""

from __future__ import annotations

import time
from importlib.metadata import version
from typing import Any
from urllib.parse import unquote, urlsplit

from _protocol import RunOnce, serve

# SodaCL has no built-in distinct-count metric, so the documented user-defined metric expression is
# used; it is folded into Soda's single aggregate query like the built-in metrics. The row-level
# condition uses the idiomatic "failed rows" check.
CHECKS_YAML = """
checks for lineitem:
  - row_count > 1000
  - missing_count(l_quantity) = 0
  - missing_count(l_extendedprice) = 0
  - missing_count(l_discount) = 0
  - missing_count(l_shipdate) = 0
  - missing_count(l_shipmode) = 0
  - min(l_quantity) >= 1
  - max(l_quantity) <= 50
  - min(l_extendedprice) > 0
  - min(l_discount) >= 0
  - max(l_discount) <= 0.1
  - distinct_shipmodes <= 7:
      distinct_shipmodes expression: COUNT(DISTINCT l_shipmode)
  - failed rows:
      name: ship_before_receipt
      fail condition: l_shipdate > l_receiptdate
"""


def _configuration_yaml(uri: str) -> str:
    parts = urlsplit(uri)
    return f"""
data_source bench:
  type: postgres
  host: {parts.hostname or "127.0.0.1"}
  port: {parts.port or 5432}
  username: {unquote(parts.username or "postgres")}
  password: "{unquote(parts.password or "")}"
  database: {parts.path.lstrip("/")}
  schema: public
"""


def setup(uri: str) -> RunOnce:
    from soda.scan import Scan

    configuration = _configuration_yaml(uri)

    def run_once() -> tuple[float, list[dict[str, Any]]]:
        scan = Scan()
        scan.set_data_source_name("bench")
        scan.add_configuration_yaml_str(configuration)
        scan.add_sodacl_yaml_str(CHECKS_YAML)
        # Telemetry would add network calls (which fail offline) to the timed section.
        scan.disable_telemetry()
        started = time.perf_counter()
        scan.execute()
        seconds = time.perf_counter() - started
        if scan.has_error_logs():
            raise RuntimeError(f"Soda scan logged errors:\n{scan.get_error_logs_text()}")
        checks = [
            {
                "name": check.get("name") or check.get("definition"),
                "passed": check.get("outcome") == "pass",
                "observed": str((check.get("diagnostics") or {}).get("value")),
            }
            for check in scan.get_scan_results()["checks"]
        ]
        return seconds, checks

    return run_once


if __name__ == "__main__":
    raise SystemExit(serve(setup, {"soda-core-postgres": version("soda-core-postgres")}))
