"""Great Expectations driver: runs the 13-assertion suite with GX 1.x (own venv, see checks.py).

Usage (by the benchmark): ``venv-gx/bin/python gx_driver.py URI``, then the line protocol of
``_protocol.py``. Context, datasource, asset, suite and validation definition are built once; only
``ValidationDefinition.run()`` is timed, with GX's default result format.
"""

from __future__ import annotations

import time
from importlib.metadata import version
from typing import Any

from _protocol import RunOnce, serve


def setup(uri: str) -> RunOnce:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_postgres(name="bench", connection_string=uri)
    asset = source.add_table_asset(name="lineitem", table_name="lineitem")
    batch = asset.add_batch_definition_whole_table("whole table")
    suite = context.suites.add(gx.ExpectationSuite(name="bench"))
    for expectation in [
        gxe.ExpectTableRowCountToBeBetween(min_value=1001),
        *(
            gxe.ExpectColumnValuesToNotBeNull(column=column)
            for column in ("l_quantity", "l_extendedprice", "l_discount", "l_shipdate", "l_shipmode")
        ),
        gxe.ExpectColumnMinToBeBetween(column="l_quantity", min_value=1),
        gxe.ExpectColumnMaxToBeBetween(column="l_quantity", max_value=50),
        gxe.ExpectColumnMinToBeBetween(column="l_extendedprice", min_value=0, strict_min=True),
        gxe.ExpectColumnMinToBeBetween(column="l_discount", min_value=0),
        gxe.ExpectColumnMaxToBeBetween(column="l_discount", max_value=0.1),
        gxe.ExpectColumnUniqueValueCountToBeBetween(column="l_shipmode", max_value=7),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="l_receiptdate", column_B="l_shipdate", or_equal=True),
    ]:
        suite.add_expectation(expectation)
    validation = context.validation_definitions.add(gx.ValidationDefinition(name="bench", data=batch, suite=suite))

    def run_once() -> tuple[float, list[dict[str, Any]]]:
        started = time.perf_counter()
        result = validation.run()
        seconds = time.perf_counter() - started
        checks = []
        for item in result.results:
            config = item.expectation_config
            if item.exception_info and item.exception_info.get("raised_exception"):
                raise RuntimeError(f"{config.type} raised: {item.exception_info.get('exception_message')}")
            checks.append(
                {
                    "name": f"{config.type}({config.kwargs.get('column') or ''})",
                    "passed": bool(item.success),
                    "observed": str(item.result.get("observed_value", item.result.get("unexpected_count"))),
                }
            )
        return seconds, checks

    return run_once


if __name__ == "__main__":
    raise SystemExit(serve(setup, {"great-expectations": version("great-expectations")}))
