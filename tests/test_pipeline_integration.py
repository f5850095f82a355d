"""End to end on a small generated bank: landing -> bronze -> silver -> quality, rerun, time travel."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from c360 import io, pipeline
from c360.catalog import load_catalog
from c360.datagen import DatagenParams, generate_bank
from c360.errors import QualityGateError
from jobs import bronze_ingest, silver_conform
from tests.conftest import make_config

pytestmark = pytest.mark.slow
DAYS = 2
START = dt.date(2026, 10, 1)


@pytest.fixture(scope="module")
def bank(spark, tmp_path_factory):
    """A 300-customer bank over two landing dates, ingested and conformed date by date."""
    cfg = make_config(tmp_path_factory.mktemp("bank"))
    manifest = generate_bank(DatagenParams(customers=300, seed=7, start_date=START, days=DAYS),
                             Path(cfg.path(cfg.lakehouse.landing)), Path(cfg.path(cfg.lakehouse.truth)),
                             cfg.conf_dir / "sources.yaml")
    versions = {}
    for day in _dates():
        bronze_ingest.run_ingest(spark, cfg, pipeline.new_run(cfg, bronze_ingest.JOB, day, f"test__{day}"), day)
        silver_conform.run_conform(spark, cfg, pipeline.new_run(cfg, silver_conform.JOB, day, f"test__{day}"), day)
        versions[day] = {n: io.current_version(spark, cfg, n) for n in _existing(spark, cfg)}
    return cfg, manifest, versions


def _dates() -> list[dt.date]:
    return [START + dt.timedelta(days=i) for i in range(DAYS)]


def _existing(spark, cfg) -> list[str]:
    return [n for n in sorted(load_catalog(cfg).tables) if io.exists(spark, cfg, n)]


def _snapshot(spark, cfg) -> dict[str, tuple[int | None, int]]:
    """Per table: current version and an order-independent fingerprint of the whole content."""
    snap = {}
    for name in _existing(spark, cfg):
        df = io.read(spark, cfg, name)
        digest = df.select(F.sum(F.crc32(F.to_json(F.struct(*df.columns)))).alias("h")).first().h
        snap[name] = (io.current_version(spark, cfg, name), digest)
    return snap


def test_bronze_and_quarantine_match_the_generator(spark, bank):
    cfg, manifest, _ = bank
    bronze = {}
    for feed in load_catalog(cfg).feeds.values():
        for r in io.read(spark, cfg, feed.bronze_table).groupBy("_source_file").count().collect():
            bronze[r._source_file] = r["count"]
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
    cfg, _, _ = bank
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


def test_every_commit_names_its_job_and_run(spark, bank):
    cfg, _, _ = bank
    for name in ("bronze.cards_transactions", "silver.customer_records"):
        for row in io.history(spark, cfg, name).collect():
            meta = json.loads(row.userMetadata)
            assert meta["job"] in {bronze_ingest.JOB, silver_conform.JOB} and meta["run_id"].startswith("test__")
            assert meta["git_sha"]


def test_rerun_changes_nothing_and_time_travel_reads_the_past(spark, bank):
    cfg, _, versions = bank
    before = _snapshot(spark, cfg)
    for day in _dates():
        report = bronze_ingest.run_ingest(spark, cfg, pipeline.new_run(cfg, bronze_ingest.JOB, day, "rerun"), day)
        assert report.totals()["files"] == 0 and report.totals()["skipped"] > 0
        silver_conform.run_conform(spark, cfg, pipeline.new_run(cfg, silver_conform.JOB, day, "rerun"), day)
    assert _snapshot(spark, cfg) == before
    table = "silver.customer_records"
    first_day = versions[START][table]
    assert first_day < versions[_dates()[-1]][table]
    past = io.read(spark, cfg, table, version=first_day)
    now = io.read(spark, cfg, table)
    assert past.count() < now.count()
    assert past.filter("valid_from >= '2026-10-02'").count() == 0
    assert now.filter("valid_from >= '2026-10-02'").count() > 0


def test_failed_critical_expectation_keeps_previous_version(spark, bank):
    cfg, _, _ = bank
    name = "silver.accounts"
    before_version = io.current_version(spark, cfg, name)
    before = _snapshot(spark, cfg)[name][1]
    good = io.read(spark, cfg, name).limit(1)
    duplicated = good.withColumn("account_id", F.lit("DUP-1")).unionByName(
        good.withColumn("account_id", F.lit("DUP-1")).withColumn("record_hash", F.lit("other")))
    run = pipeline.new_run(cfg, "test_gate", START, "test__gate")
    with pytest.raises(QualityGateError, match="account_id"):
        pipeline.gated_write(spark, cfg, name, run, lambda: io.merge(spark, cfg, name, duplicated, run))
    history = io.history(spark, cfg, name, 2).collect()
    assert [h.operation for h in history] == ["RESTORE", "MERGE"]
    assert history[0].version == before_version + 2
    assert _snapshot(spark, cfg)[name][1] == before
    assert io.read(spark, cfg, name).filter(F.col("account_id") == "DUP-1").count() == 0


def test_cli_history_show_and_user_errors(bank, monkeypatch, capsys):
    from c360 import cli

    cfg, _, _ = bank
    for key, value in (("ROOT", cfg.lakehouse.root), ("LANDING", cfg.lakehouse.landing),
                       ("TRUTH", cfg.lakehouse.truth), ("QUALITY", cfg.lakehouse.quality)):
        monkeypatch.setenv(f"C360__LAKEHOUSE__{key}", value)
    assert cli.main(["history", "silver.customer_records"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "silver_conform" in out and "test__2026-10-02" in out
    assert cli.main(["show", "silver.accounts", "--version", "1", "--columns", "account_id,status", "--limit", "2"]) == 0
    assert "account_id" in capsys.readouterr().out
    assert cli.main(["show", "silver.nope"]) == cli.EXIT_USER_ERROR
    assert "unknown table 'silver.nope'" in capsys.readouterr().err
    assert cli.main(["show", "silver.accounts", "--where", "no_such_column = 1"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "no_such_column" in err and "Traceback" not in err
    assert cli.main(["lineage", "silver.customer_records", "--versions", "3"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "<- bronze.core_banking_customers" in out and "silver_conform" in out and "test__2026-10-02" in out
    assert cli.main(["tables"]) == cli.EXIT_OK
    assert "one row per account" in capsys.readouterr().out
