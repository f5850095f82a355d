"""End to end on a small generated bank: c360_daily backfilled through Airflow itself, then rerun.

The module fixture generates a 300-customer bank over two landing dates and backfills both through
Airflow (`orchestration.backfill`: one `airflow dags test` per date, in order, SQLite metadata DB,
every Spark task a real spark-submit), as a data engineer would. The tests check what was published
(bronze against the generator's truth, silver, gold, commit metadata, the run log, lineage, time
travel to what the first date published), rerun a whole date and tasks (nothing may change), fail
quality gates on purpose (downstream stops, gold stays) and run maintenance. Tests that add commits
come last. Through Airflow a date costs minutes of this machine, so this module runs two and one
rerun; the jobs' own logic is tested in-process by the other modules.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from c360 import io, lineage, orchestration, pipeline
from c360.catalog import load_catalog
from c360.config import load_config
from c360.datagen import generate_bank
from c360.errors import QualityGateError
from jobs import bronze_ingest, silver_conform
from tests.conftest import airflow_bank_environ

pytestmark = pytest.mark.slow
START = dt.date(2026, 10, 1)
DATES = [START, START + dt.timedelta(days=1)]
# The tasks each date runs; scores.score is skipped by scores.any_champion while no model has a champion.
TASKS = ["land.generate_or_land", "bronze.ingest", "silver.conform", "quality.check", "identity.resolve", "gold.publish",
         "features.build", "scores.any_champion"]
SPARK_TASKS = ("bronze.ingest", "silver.conform", "identity.resolve", "gold.publish", "features.build")


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """The bank's two dates backfilled through Airflow: (config, environment, root, table fingerprints)."""
    root = tmp_path_factory.mktemp("bank")
    environ = airflow_bank_environ(root, root, START, len(DATES))
    cfg = load_config(environ=environ)
    # The DAG's land task finds this bank made with conf's parameters, so it does not regenerate it.
    generate_bank(orchestration.demo_params(cfg), Path(cfg.path(cfg.lakehouse.landing)),
                  Path(cfg.path(cfg.lakehouse.truth)), cfg.conf_dir / "sources.yaml")
    lines: list[str] = []
    results = orchestration.backfill(cfg, DATES[0], DATES[-1], out=lines.append, environ=environ,
                                     log_dir=root / "runs")
    assert results == [(day, 0) for day in DATES], "\n".join(lines)
    return cfg, environ, root, _fingerprint(cfg)


def _fingerprint(cfg) -> dict[str, str]:
    """Per table (the run log aside, which records every try by design): a digest of its whole content."""
    digests = {}
    for name in sorted(load_catalog(cfg).tables):
        table = None if name == orchestration.RUN_LOG else lineage.open_table(cfg, name)
        if table is None:
            continue
        rows = sorted(json.dumps(r, sort_keys=True, default=str) for r in table.to_pyarrow_table().to_pylist())
        digests[name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return digests


def _run_log(cfg) -> list[dict]:
    return lineage.open_table(cfg, orchestration.RUN_LOG).to_pyarrow_table().to_pylist()


def _dags_test(cfg, environ, root, day, name, tasks=None) -> tuple[int, str]:
    path = root / "runs" / f"{name}.log"
    with open(path, "w", encoding="utf-8") as fh:
        code = orchestration.dags_test(cfg, day, tasks=tasks, env=orchestration.airflow_env(cfg, environ), output=fh)
    return code, path.read_text(encoding="utf-8")


def test_bronze_and_quarantine_match_the_generator(spark, bank):
    cfg = bank[0]
    manifest = json.loads((Path(cfg.path(cfg.lakehouse.truth)) / "manifest.json").read_text(encoding="utf-8"))
    bronze = {}
    for feed in load_catalog(cfg).feeds.values():
        for r in io.read(spark, cfg, feed.bronze_table).groupBy("_source_file").count().collect():
            bronze[r._source_file] = r["count"]
    assert len(manifest["files"]) == len(load_catalog(cfg).feeds) * len(DATES)
    for entry in manifest["files"]:
        assert bronze.get(entry["path"], 0) == entry["records"] - entry["bad"], entry["path"]
    with open(Path(cfg.path(cfg.lakehouse.truth)) / "bad_rows.csv", newline="") as fh:
        truth = {(r["file"], int(r["record_no"]), r["reason"]) for r in csv.DictReader(fh)}
    quarantined = {(r._source_file, r._record_no, r.reason)
                   for r in io.read(spark, cfg, "bronze.quarantine").select("_source_file", "_record_no", "reason").collect()}
    assert truth, "the generator injected no bad rows"
    assert quarantined == truth
    reasons = {reason for _, _, reason in truth}
    assert {"truncated_record", "malformed_date", "negative_amount", "unknown_currency", "duplicate_key"} <= reasons


def test_silver_reflects_bronze(spark, bank):
    cfg = bank[0]
    current = io.read(spark, cfg, "silver.customer_records").filter("is_current")
    per_system = {r.source_system: r["count"] for r in current.groupBy("source_system").count().collect()}
    feeds = {"core_banking": ("bronze.core_banking_customers", "cust_no"), "cards": ("bronze.cards_customers", "card_customer_id"),
             "digital": ("bronze.digital_profiles", "digital_id"), "crm": ("bronze.crm_contacts", "contact_id")}
    for system, (table, key) in feeds.items():
        assert per_system[system] == io.read(spark, cfg, table).select(key).distinct().count(), system
    assert current.count() == current.select("source_system", "source_record_id").distinct().count()
    assert io.read(spark, cfg, "silver.card_transactions").count() == io.read(spark, cfg, "bronze.cards_transactions").count()
    phones = io.read(spark, cfg, "silver.customer_records").filter(F.col("phone_e164").isNotNull())
    assert phones.filter(~F.col("phone_e164").rlike(r"^\+[1-9][0-9]{7,14}$")).count() == 0
    assert phones.count() > 0


def _dag_runs(cfg) -> list[dict]:
    """The DAG runs of the run log (task "-"), in the order they started."""
    return sorted((r for r in _run_log(cfg) if r["task_id"] == "-"), key=lambda r: r["started_at"])


def test_the_backfill_ran_each_date_once_in_order_and_published_gold(spark, bank):
    cfg = bank[0]
    runs, dag_runs = _run_log(cfg), _dag_runs(cfg)
    assert [str(r["logical_date"])[:10] for r in dag_runs] == [d.isoformat() for d in DATES]
    for dag_run in dag_runs:
        by_task = {r["task_id"]: r for r in runs if r["run_id"] == dag_run["run_id"]}
        assert {t: r["state"] for t, r in by_task.items()} == {**{t: "success" for t in TASKS}, "-": "success"}
        assert all(r["duration_s"] >= 0 for r in by_task.values())
    first = {r["task_id"]: r for r in runs if r["run_id"] == dag_runs[0]["run_id"]}
    assert all(first[t]["rows_written"] > 0 for t in SPARK_TASKS), first
    assert "silver.customer_xref" in first["identity.resolve"]["tables_written"].split(",")
    gold = io.read(spark, cfg, "gold.customer_360")
    assert gold.count() == io.read(spark, cfg, "silver.customer_xref").select("customer_id").distinct().count() > 0
    assert gold.filter((F.col("product_penetration") < 0) | (F.col("product_penetration") > 1)).count() == 0
    # Every commit names its job, one of the backfill's DAG runs and the code version: DESCRIBE HISTORY
    # answers "which run wrote this" (a date that changed nothing in a table adds no version to it).
    dag_run_ids = {r["run_id"] for r in dag_runs}
    jobs = {"bronze.cards_transactions": "bronze_ingest", "silver.customer_records": "silver_conform",
            "silver.customer_xref": "resolve_identity", "gold.customer_360": "publish_gold"}
    for name, job in jobs.items():
        metas = [json.loads(row.userMetadata) for row in io.history(spark, cfg, name).collect()]
        assert metas and all(m["job"] == job and m["run_id"] in dag_run_ids and m["git_sha"] for m in metas), name


def test_lineage_events_link_tables_spark_jobs_and_airflow_runs(bank):
    cfg = bank[0]
    files = {p.name for p in lineage.events_dir(cfg).glob("*.jsonl")}
    assert files == {"airflow.jsonl", "spark.jsonl"}
    airflow_jobs = {e["job"]["name"] for e in lineage.read_events(cfg) if e.get("job", {}).get("namespace") == "c360"}
    assert {"c360_daily.silver.conform", "c360_daily.gold.publish"} <= airflow_jobs
    rep = lineage.report(cfg, "gold.customer_360", versions=5)
    upstream = {u["name"] for u in rep["upstream"]}
    assert {"silver.customer_xref", "silver.customer_records"} <= upstream
    assert any(name.startswith("bronze.") for name in upstream)
    assert any(j["airflow_task"] == "c360_daily.gold.publish" for j in rep["jobs"])
    assert rep["versions"] and rep["versions"][0]["dag_id"] == "c360_daily"
    text = lineage.render(rep)
    assert "gold.customer_360" in text and "c360_daily.gold.publish" in text


def test_time_travel_reads_what_the_first_date_published(spark, bank):
    cfg = bank[0]
    table = "silver.customer_records"
    # The auditor's question: the newest version the first date's DAG run committed.
    first_run = _dag_runs(cfg)[0]["run_id"]
    first_day = max(c["version"] for c in lineage.table_history(cfg, table, 50)
                    if lineage.commit_run(c).get("run_id") == first_run)
    assert first_day < io.current_version(spark, cfg, table)
    past = io.read(spark, cfg, table, version=first_day)
    now = io.read(spark, cfg, table)
    assert past.count() < now.count()
    assert past.filter("valid_from >= '2026-10-02'").count() == 0
    assert now.filter("valid_from >= '2026-10-02'").count() > 0
    # Identity's SCD2 history, too, holds versions from both dates.
    golden = io.read(spark, cfg, "silver.golden_customers")
    assert golden.select(F.to_date("valid_from").alias("day")).distinct().count() == len(DATES)


def test_cli_history_show_lineage_and_user_errors(bank, monkeypatch, capsys):
    from c360 import cli

    for key, value in bank[1].items():
        if key.startswith("C360__"):
            monkeypatch.setenv(key, value)
    second_run = _dag_runs(bank[0])[-1]["run_id"]
    assert cli.main(["history", "silver.customer_records"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "silver_conform" in out and second_run in out
    assert cli.main(["show", "silver.accounts", "--version", "0", "--columns", "account_id,status", "--limit", "2"]) == 0
    assert "account_id" in capsys.readouterr().out
    assert cli.main(["show", "silver.nope"]) == cli.EXIT_USER_ERROR
    assert "unknown table 'silver.nope'" in capsys.readouterr().err
    assert cli.main(["show", "silver.accounts", "--where", "no_such_column = 1"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "no_such_column" in err and "Traceback" not in err
    assert cli.main(["lineage", "silver.customer_records", "--versions", "3"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "<- bronze.core_banking_customers" in out and "silver_conform" in out and second_run in out
    assert cli.main(["tables"]) == cli.EXIT_OK
    assert "one row per account" in capsys.readouterr().out


def test_rerunning_a_date_and_a_task_leaves_every_table_unchanged(spark, bank):
    cfg, environ, root, tables = bank
    known = {r["run_id"] for r in _run_log(cfg)}
    # The whole last date again through Airflow, as a data engineer would after a failure elsewhere.
    code, output = _dags_test(cfg, environ, root, DATES[-1], "rerun_date")
    assert code == 0, output[-3000:]
    assert _fingerprint(cfg) == tables
    # Nothing changed since the backfill's run of the date, so no Spark task started a JVM (c360.memo).
    assert sorted(set(re.findall(r"(\S+): skipped, inputs, code, settings and outputs are as run", output))) == sorted(
        t for t in TASKS[1:] if t != "scores.any_champion"), output[-3000:]
    rerun = {r["task_id"]: r for r in _run_log(cfg) if r["run_id"] not in known}
    assert {t: r["state"] for t, r in rerun.items()} == {**{t: "success" for t in TASKS}, "-": "success"}
    assert rerun["bronze.ingest"]["rows_written"] == 0 and rerun["silver.conform"]["rows_written"] == 0
    # Clear and rerun one task: the rerun itself is recorded (the task's row and the DAG run's row).
    logged = len(_run_log(cfg))
    code, output = _dags_test(cfg, environ, root, DATES[-1], "rerun_task", tasks=["gold.publish"])
    assert code == 0, output[-3000:]
    assert _fingerprint(cfg) == tables
    assert len(_run_log(cfg)) == logged + 2
    # Re-ingest and re-conform the older date after the newer one has published: SCD2 history must not move.
    day = DATES[0]
    report = bronze_ingest.run_ingest(spark, cfg, pipeline.new_run(cfg, bronze_ingest.JOB, day, "rerun"), day)
    assert report.totals()["files"] == 0 and report.totals()["skipped"] > 0
    silver_conform.run_conform(spark, cfg, pipeline.new_run(cfg, silver_conform.JOB, day, "rerun"), day)
    assert _fingerprint(cfg) == tables


def test_a_failed_quality_gate_fails_fast_and_keeps_gold(bank):
    from deltalake import DeltaTable, write_deltalake

    cfg, environ, root = bank[:3]
    gold_before = lineage.table_state(cfg, "gold.customer_360")
    accounts = DeltaTable(lineage.delta_uri(load_catalog(cfg).table("silver.accounts").location(cfg)))
    good_version = accounts.version()
    # A duplicate key slipped into silver (e.g. a manual fix): the quality gate must stop identity and gold.
    write_deltalake(accounts, accounts.to_pyarrow_table().slice(0, 1), mode="append")
    try:
        code, output = _dags_test(cfg, environ, root, DATES[-1], "gate_fails",
                                  tasks=["quality.check", "identity.resolve", "gold.publish"])
    finally:
        accounts.restore(good_version)
    assert code != 0
    assert "quality silver.accounts" in output and "CRITICAL" in output
    assert lineage.table_state(cfg, "gold.customer_360") == gold_before
    failed = [r for r in _run_log(cfg) if r["state"] == "failed" and r["task_id"] == "quality.check"]
    assert len(failed) == 1 and failed[0]["try_number"] == 1 and "silver.accounts" in failed[0]["error"]
    assert not [r for r in _run_log(cfg) if r["state"] == "up_for_retry"]
    assert "gold.publish" not in {r["task_id"] for r in _run_log(cfg) if r["run_id"] == failed[0]["run_id"]}


def test_failed_write_gate_commits_nothing(spark, bank):
    cfg, tables = bank[0], bank[3]
    name = "silver.accounts"
    before_version = io.current_version(spark, cfg, name)
    good = io.read(spark, cfg, name).limit(1)
    duplicated = good.withColumn("account_id", F.lit("DUP-1")).unionByName(
        good.withColumn("account_id", F.lit("DUP-1")).withColumn("record_hash", F.lit("other")))
    run = pipeline.new_run(cfg, "test_gate", START, "test__gate")
    with pytest.raises(QualityGateError, match="account_id"):
        pipeline.gated_write(spark, cfg, name, run, lambda: io.merge(spark, cfg, name, duplicated, run))
    # Write-audit-publish: the failing state was validated before any commit, so no version holds it.
    assert io.current_version(spark, cfg, name) == before_version
    assert _fingerprint(cfg)[name] == tables[name]


def test_maintenance_checks_history_then_compacts_and_vacuums_within_audit_retention(spark, bank):
    from jobs import maintenance

    cfg, tables = bank[0], bank[3]
    # One table of each kind (bronze append-only and partitioned, silver hand-fixed above, the identity
    # xref, gold) and the one with the most files; the DAG runs the same steps on every table.
    names = ["bronze.cards_transactions", "silver.accounts", "silver.customer_xref", "gold.customer_360"]
    files = {n: len(t.file_uris()) for n in load_catalog(cfg).tables if (t := lineage.open_table(cfg, n)) is not None}
    most = max(files, key=files.get)
    assert files[most] >= cfg.maintenance.optimize_min_files, files
    names = sorted({*names, most})
    findings = {n: maintenance.check_history(spark, cfg, n) for n in names}
    # Exactly the commits made outside the pipeline (the manual fix above, without run metadata) are findings.
    untagged = {n: [c["version"] for c in lineage.table_history(cfg, n, cfg.maintenance.history_versions)
                    if c.get("operation") not in ("VACUUM START", "VACUUM END") and not lineage.commit_run(c).get("run_id")]
                for n in names}
    assert {n: len(f) for n, f in findings.items() if f} == {n: len(v) for n, v in untagged.items() if v}
    assert findings["silver.accounts"], "the manual append and restore above carry no run metadata"
    assert findings["gold.customer_360"] == [] and findings["bronze.cards_transactions"] == []
    run = pipeline.new_run(cfg, maintenance.JOB, DATES[-1], "test__maintenance")
    report = maintenance.run_maintenance(spark, cfg, run, ["optimize", "vacuum"], names)
    assert all(v["retention_days"] >= load_catalog(cfg).table(v["table"]).retention_days for v in report["vacuum"])
    assert any(o["optimized"] for o in report["optimize"])
    assert _fingerprint(cfg) == tables
    optimized = next(o["table"] for o in report["optimize"] if o["optimized"])
    assert lineage.commit_run(next(c for c in lineage.table_history(cfg, optimized, 5)
                                   if c["operation"] == "OPTIMIZE"))["run_id"] == "test__maintenance"
