"""Backfill through Airflow: three past business dates run in order give the tables that running each date once gives.

Two lakehouses read the same generated bank (three landing dates). In the first, `c360_daily`
backfills the three dates through Airflow itself (`orchestration.backfill`: one `airflow dags test`
run per date, in order, every Spark task a real spark-submit). In the second, each date runs once
on its own, as the scheduled daily runs would: the same jobs for the same logical date, here in the
test's SparkSession. Every table must then hold the same rows, apart from the columns that only
name the run that wrote a row (run ids and the times runs started).

The module took 31 to 33 minutes on two cores (measured: the daily runs 10, the backfill 20), so it is
not part of `make test`: `make test-backfill` runs it, and so does `.ci/run`, after `make test`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from c360 import lineage, orchestration, pipeline
from c360.catalog import load_catalog
from c360.config import load_config
from c360.datagen import generate_bank
from jobs import bronze_ingest, publish_gold, resolve_identity, silver_conform
from tests.conftest import airflow_bank_environ

pytestmark = [pytest.mark.slow, pytest.mark.backfill]
START = dt.date(2026, 10, 1)
DATES = [START + dt.timedelta(days=i) for i in range(3)]
# Columns whose values name the run that wrote a row, not the data: they differ between any two runs.
RUN_COLUMNS = {"_ingested_at", "ingested_at", "run_id", "resolved_run_id", "resolved_at", "first_seen_run_id",
               "event_at", "updated_at", "decided_at"}


def _environ(root: Path, lakehouse: str) -> dict[str, str]:
    """Settings of one lakehouse over the shared landing folder and truth."""
    return airflow_bank_environ(root / lakehouse, root, START, len(DATES))


def _content(cfg) -> dict[str, list[str]]:
    """Per table (the run log aside, which records runs, not data): its rows without run columns, sorted."""
    tables = {}
    for name in sorted(load_catalog(cfg).tables):
        table = None if name == orchestration.RUN_LOG else lineage.open_table(cfg, name)
        if table is not None:
            rows = table.to_pyarrow_table().to_pylist()
            tables[name] = sorted(json.dumps({k: v for k, v in r.items() if k not in RUN_COLUMNS},
                                             sort_keys=True, default=str) for r in rows)
    return tables


def _digest(rows: list[str]) -> str:
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


@pytest.fixture(scope="module")
def lakehouses(spark, tmp_path_factory):
    """The same bank: backfilled through Airflow in one lakehouse, each date run once in the other."""
    root = tmp_path_factory.mktemp("backfill")
    backfilled, daily = (load_config(environ=_environ(root, name)) for name in ("backfilled", "daily"))
    generate_bank(orchestration.demo_params(daily), Path(daily.path(daily.lakehouse.landing)),
                  Path(daily.path(daily.lakehouse.truth)), daily.conf_dir / "sources.yaml")
    for day in DATES:
        # One daily run per date: the jobs c360_daily's Spark tasks run, with the date as run date
        # (quality.check writes no table, so it is left out here).
        run_id = f"scheduled__{day}"
        bronze_ingest.run_ingest(spark, daily, pipeline.new_run(daily, bronze_ingest.JOB, day, run_id), day)
        silver_conform.run_conform(spark, daily, pipeline.new_run(daily, silver_conform.JOB, day, run_id), day)
        resolve_identity.run_resolution(spark, daily, pipeline.new_run(daily, resolve_identity.JOB, day, run_id))
        publish_gold.publish(spark, daily, pipeline.new_run(daily, publish_gold.JOB, day, run_id))
    lines: list[str] = []
    results = orchestration.backfill(backfilled, DATES[0], DATES[-1], out=lines.append,
                                     environ=_environ(root, "backfilled"), log_dir=root / "runs")
    assert results == [(day, 0) for day in DATES], "\n".join(lines)
    return backfilled, daily


def test_backfilling_three_dates_gives_the_tables_of_three_daily_runs(lakehouses):
    backfilled, daily = lakehouses
    ran, reference = _content(backfilled), _content(daily)
    assert set(ran) == set(reference)
    assert {"bronze.quarantine", "silver.customer_records", "silver.customer_xref", "silver.golden_customers",
            "silver.identity_events", "gold.customer_360"} <= set(ran)
    differ = {}
    for name in sorted(ran):
        if _digest(ran[name]) != _digest(reference[name]):
            only_backfill = sorted(set(ran[name]) - set(reference[name]))
            only_daily = sorted(set(reference[name]) - set(ran[name]))
            differ[name] = {"rows": (len(ran[name]), len(reference[name])),
                            "only_backfill": only_backfill[:2], "only_daily": only_daily[:2]}
    assert not differ, json.dumps(differ, indent=1)
    # The later dates did change things: SCD2 history holds versions from more than one date.
    golden = [json.loads(r) for r in ran["silver.golden_customers"]]
    assert len({r["valid_from"][:10] for r in golden}) > 1


def test_the_backfill_ran_each_date_once_in_order(lakehouses):
    backfilled = lakehouses[0]
    runs = lineage.open_table(backfilled, orchestration.RUN_LOG).to_pyarrow_table().to_pylist()
    dag_runs = sorted((r for r in runs if r["task_id"] == "-"), key=lambda r: r["started_at"])
    assert [str(r["logical_date"])[:10] for r in dag_runs] == [d.isoformat() for d in DATES]
    assert all(r["state"] == "success" for r in dag_runs)
    # Every Delta commit of the backfilled tables names one of those DAG runs (a date whose run
    # changed nothing in a table adds no version to it).
    dag_run_ids = {r["run_id"] for r in dag_runs}
    for name in ("bronze.cards_transactions", "silver.customer_records", "silver.customer_xref", "gold.customer_360"):
        written = {lineage.commit_run(c).get("run_id") for c in lineage.table_history(backfilled, name, 20)}
        assert written and written <= dag_run_ids, name
