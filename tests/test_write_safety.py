"""Crash safety, concurrency and re-delivery of the write path (issue 18).

Tiny inline frames check the write-audit-publish contract in this process: a failing gate commits
nothing, a first write is one commit with its data and properties, a version committed without a
gate is validated before anything builds on it, a commit on another version than the one validated
is audited after the fact, concurrent merges fail with one clear error, and no PII reaches Delta's
statistics. The slow tests run the real jobs on a 30-customer bank of one day: a re-delivered
landing file that drops rows, two first conforms at once (two processes), and kill -9 at each crash
point of the conform followed by a rerun.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import shutil
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import types as T

from c360 import faults, io, pipeline
from c360.catalog import load_catalog
from c360.datagen import DatagenParams, generate_bank
from c360.errors import QualityGateError
from jobs import bronze_ingest, silver_conform
from tests.conftest import make_config

PROJECT = Path(__file__).resolve().parent.parent
D1, D2 = dt.date(2026, 10, 1), dt.date(2026, 10, 2)
TXNS = "silver.card_transactions"
ACCOUNTS = "silver.accounts"


def _run(cfg, run_id: str, day: dt.date = D1):
    return pipeline.new_run(cfg, silver_conform.JOB, day, run_id)


def _txns(spark, cfg, rows: list[tuple]):
    """silver.card_transactions rows (txn_id, amount, landing_date) with plausible other columns."""
    raw = [(txn, "CA1", dt.datetime(2026, 9, 30, 12, 0), dt.date(2026, 9, 30), Decimal(amount), "GBP", "5411", "GB",
            "POS", landing) for txn, amount, landing in rows]
    schema = io.schema_of(io.spec(cfg, TXNS))
    unhashed = T.StructType([f for f in schema.fields if f.name != "record_hash"])
    return silver_conform.with_record_hash(spark.createDataFrame(raw, unhashed), ["txn_id"])


def _rows(spark, cfg, name: str, version: int | None = None) -> list[tuple]:
    return sorted(tuple(r) for r in io.read(spark, cfg, name, version=version).collect())


def _gated_merge(spark, cfg, name, frame, run, **options):
    return pipeline.gated_write(spark, cfg, name, run, lambda: io.merge(spark, cfg, name, frame, run, **options))


def _passed_current(spark, cfg, name: str) -> bool:
    return pipeline.has_recorded_pass(cfg, name, io.version_stamp(spark, cfg, name))


# ---- in-process, tiny frames --------------------------------------------------------------


def test_first_write_is_one_commit_with_its_rows_properties_and_comment(spark, tmp_path):
    cfg = make_config(tmp_path)
    run = _run(cfg, "safety__first")
    empty = _gated_merge(spark, cfg, TXNS, _txns(spark, cfg, []), run)
    assert empty.version is None and not Path(io.location(cfg, TXNS)).exists()

    stats = _gated_merge(spark, cfg, TXNS, _txns(spark, cfg, [("T1", "1.00", D1), ("T2", "2.00", D1)]), run)
    assert (stats.version, stats.inserted) == (0, 2)
    history = io.history(spark, cfg, TXNS).select("version", "operation").collect()
    assert [tuple(h) for h in history] == [(0, "CREATE TABLE AS SELECT")]
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{io.location(cfg, TXNS)}`").first()
    assert detail["description"].startswith("silver.card_transactions: one row per card transaction")
    assert detail["properties"]["delta.enableChangeDataFeed"] == "true"
    assert detail["properties"]["delta.logRetentionDuration"] == "interval 2555 days"
    assert detail["properties"]["delta.deletedFileRetentionDuration"] == "interval 2555 days"
    assert "txn_id" in detail["properties"]["delta.dataSkippingStatsColumns"].split(",")
    assert _passed_current(spark, cfg, TXNS)


def test_failing_gate_commits_nothing_and_the_change_feed_never_sees_it(spark, tmp_path):
    cfg = make_config(tmp_path / "existing")
    run = _run(cfg, "safety__gate")
    _gated_merge(spark, cfg, TXNS, _txns(spark, cfg, [("T1", "1.00", D1), ("T2", "2.00", D1)]), run)
    bad = _txns(spark, cfg, [("T1", "5.00", D1), ("T-BAD", "-3.00", D1)])
    with pytest.raises(QualityGateError, match="amount"):
        _gated_merge(spark, cfg, TXNS, bad, run)
    assert io.current_version(spark, cfg, TXNS) == 0
    changes = (spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 0)
               .load(io.location(cfg, TXNS)).select("txn_id", "amount", "_change_type").collect())
    assert sorted((r.txn_id, str(r.amount), r._change_type) for r in changes) == [
        ("T1", "1.00", "insert"), ("T2", "2.00", "insert")]

    # A first write that fails its gate leaves nothing at all: no table, no folder, nothing removed.
    fresh = make_config(tmp_path / "fresh")
    with pytest.raises(QualityGateError):
        _gated_merge(spark, fresh, TXNS, bad, _run(fresh, "safety__gate_first"))
    assert not Path(io.location(fresh, TXNS)).exists()


def test_a_version_committed_without_a_gate_is_validated_before_anything_builds_on_it(spark, tmp_path):
    cfg = make_config(tmp_path)
    run = _run(cfg, "safety__unvalidated")
    _gated_merge(spark, cfg, TXNS, _txns(spark, cfg, [("T1", "1.00", D1)]), run)
    # What a run killed between its commit and its gate (or an older code path) leaves: a good version
    # without a recorded pass. The next gated write validates it, records the pass, and commits nothing new.
    good = _txns(spark, cfg, [("T1", "1.00", D1), ("T2", "2.00", D1)])
    io.merge(spark, cfg, TXNS, good, run)
    assert io.current_version(spark, cfg, TXNS) == 1 and not _passed_current(spark, cfg, TXNS)
    assert _gated_merge(spark, cfg, TXNS, good, run).version is None
    assert io.current_version(spark, cfg, TXNS) == 1 and _passed_current(spark, cfg, TXNS)
    # A bad one is not built upon: the gated write fails and commits nothing.
    io.merge(spark, cfg, TXNS, _txns(spark, cfg, [("T3", "-1.00", D1)]), run)
    with pytest.raises(QualityGateError, match="amount"):
        _gated_merge(spark, cfg, TXNS, _txns(spark, cfg, [("T4", "4.00", D1)]), run)
    assert io.current_version(spark, cfg, TXNS) == 2


def test_a_commit_based_on_another_version_than_the_validated_one_is_audited_after_the_fact(spark, tmp_path):
    cfg = make_config(tmp_path)
    run = _run(cfg, "safety__pinned")
    _gated_merge(spark, cfg, TXNS, _txns(spark, cfg, [("T1", "1.00", D1)]), run)
    intruder = _txns(spark, cfg, [("T9", "9.00", D1)])

    def another_run_commits(state, base_version):
        # Another writer commits after this run's gate validated version 0 and before its own commit.
        intruder.write.format("delta").mode("append").save(io.location(cfg, TXNS))

    def write():
        with io.gated(TXNS, another_run_commits):
            return io.merge(spark, cfg, TXNS, _txns(spark, cfg, [("T2", "2.00", D1)]), run)

    stats = pipeline.gated_write(spark, cfg, TXNS, run, write)
    assert (stats.version, stats.read_version) == (2, 1)
    assert [r.txn_id for r in io.read(spark, cfg, TXNS).orderBy("txn_id").collect()] == ["T1", "T2", "T9"]
    assert _passed_current(spark, cfg, TXNS)


def test_incremental_merge_retracts_only_the_rows_of_the_redelivered_date(spark, tmp_path):
    cfg = make_config(tmp_path)
    run = _run(cfg, "safety__retract", D2)
    first = [("T1", "1.00", D1), ("T2", "2.00", D1), ("T3", "3.00", D2), ("T4", "4.00", D2)]
    _gated_merge(spark, cfg, TXNS, _txns(spark, cfg, first), run)
    retract = silver_conform.retraction(io.spec(cfg, TXNS), D2)
    redelivered = _txns(spark, cfg, [("T3", "3.00", D2)])
    stats = _gated_merge(spark, cfg, TXNS, redelivered, run, retract_where=retract)
    assert (stats.deleted, stats.inserted, stats.updated) == (1, 0, 0)
    assert [r.txn_id for r in io.read(spark, cfg, TXNS).orderBy("txn_id").collect()] == ["T1", "T2", "T3"]
    assert _gated_merge(spark, cfg, TXNS, redelivered, run, retract_where=retract).version is None
    assert _passed_current(spark, cfg, TXNS)


def test_concurrent_merges_fail_with_one_clear_error(spark, tmp_path):
    cfg = make_config(tmp_path)
    run = _run(cfg, "safety__concurrent")
    _gated_merge(spark, cfg, TXNS, _txns(spark, cfg, [("T1", "1.00", D1), ("T2", "2.00", D1)]), run)
    both_validated = threading.Barrier(2, timeout=120)
    outcomes: dict[str, object] = {}

    def writer(amount: str) -> None:
        # Both merges pass their gate, then commit at the same moment on the same version and file.
        try:
            with io.gated(TXNS, lambda state, base: both_validated.wait()):
                outcomes[amount] = io.merge(spark, cfg, TXNS, _txns(spark, cfg, [("T1", amount, D1)]), run)
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            outcomes[amount] = exc

    threads = [threading.Thread(target=writer, args=(a,)) for a in ("5.00", "6.00")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    errors = [o for o in outcomes.values() if isinstance(o, Exception)]
    assert len(errors) == 1, outcomes
    assert isinstance(errors[0], io.ConcurrentWriteError), repr(errors[0])
    assert str(errors[0]).startswith(f"{TXNS}: another run committed to this table at the same time")
    assert "\n" not in str(errors[0])
    assert io.current_version(spark, cfg, TXNS) == 1


def _log_text(cfg, name: str, after_version: int = -1) -> str:
    commits = sorted(glob.glob(f"{io.location(cfg, name)}/_delta_log/*.json"))
    return "\n".join(Path(c).read_text() for c in commits if int(Path(c).stem) > after_version)


def _customer(spark, cfg, record_id: str, email: str, last_name: str):
    values = {c: None for c in io.spec(cfg, "silver.customer_records").columns}
    values.update(source_system="core_banking", source_record_id=record_id, email=email, last_name=last_name,
                  full_name=last_name, city="Leeds", valid_from=dt.datetime(2026, 1, 1), is_current=True,
                  record_hash="h")
    return spark.createDataFrame([tuple(values.values())], io.schema_of(io.spec(cfg, "silver.customer_records")))


def test_pii_columns_never_reach_delta_statistics(spark, tmp_path):
    from delta.tables import DeltaTable

    cfg = make_config(tmp_path)
    run = _run(cfg, "safety__pii")
    name = "silver.customer_records"
    io.merge(spark, cfg, name, _customer(spark, cfg, "C1", "pii-7f3a91@example.org", "Zyxwquist"), run)
    log = _log_text(cfg, name)
    assert '"stats"' in log and '\\"city\\"' in log, "statistics are still kept on non-PII columns"
    assert "pii-7f3a91" not in log and "Zyxwquist" not in log

    # A table created before statistics were restricted gets the property at its next write.
    old = make_config(tmp_path / "old")
    (DeltaTable.createIfNotExists(spark).location(io.location(old, name))
     .addColumns(io.schema_of(io.spec(old, name))).execute())
    io.merge(spark, old, name, _customer(spark, old, "C2", "pii-b6d204@example.org", "Qorvath"), run)
    properties = spark.sql(f"DESCRIBE DETAIL delta.`{io.location(old, name)}`").first()["properties"]
    assert "email" not in properties["delta.dataSkippingStatsColumns"].split(",")
    assert "pii-b6d204" not in _log_text(old, name) and "Qorvath" not in _log_text(old, name)

    # Bronze too: quarantine's raw record is PII.
    quarantine = spark.createDataFrame(
        [("crm", "contacts", "crm/contacts/f.csv", 3, D1, "b1", dt.datetime(2026, 10, 1), "missing_required",
          "email", "raw-5c1e@example.org", "raw-5c1e@example.org,Smith")],
        io.schema_of(io.spec(cfg, "bronze.quarantine")))
    io.replace_where(spark, cfg, "bronze.quarantine", quarantine, "_source_file = 'crm/contacts/f.csv'", run)
    assert "raw-5c1e" not in _log_text(cfg, "bronze.quarantine")


# ---- the real jobs on a tiny bank ---------------------------------------------------------

# The feeds of silver.customer_records, silver.accounts, silver.balances and silver.card_transactions.
FEEDS = ("core_banking/customers", "cards/customers", "digital/profiles", "crm/contacts", "core_banking/accounts",
         "cards/accounts", "core_banking/balances", "cards/transactions")


def _environ(root: Path) -> dict[str, str]:
    """The environment of a job process whose lakehouse is `root` (as make_config, with a smaller JVM)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("C360__") and k != faults.ENV},
        "C360__LAKEHOUSE__ROOT": str(root / "lakehouse"), "C360__LAKEHOUSE__LANDING": str(root / "landing"),
        "C360__LAKEHOUSE__TRUTH": str(root / "truth"), "C360__LAKEHOUSE__QUALITY": str(root / "quality"),
        "C360__SPARK__MASTER": "local[2]", "C360__SPARK__SHUFFLE_PARTITIONS": "1",
        # Two job JVMs may run beside the test session's: 1g each is plenty for 30 customers.
        "C360__SPARK__DRIVER_MEMORY": "1g", "C360__SPARK__LOG_LEVEL": "ERROR",
        "PYTHONPATH": str(PROJECT),
    }


@pytest.fixture(scope="module")
def bank(spark, tmp_path_factory) -> Path:
    """A folder with the landing files and bronze of a 30-customer bank's first day (only FEEDS)."""
    root = tmp_path_factory.mktemp("safety_bank")
    generated = root / "generated"
    cfg = make_config(root)
    generate_bank(DatagenParams(customers=30, seed=3, start_date=D1, days=1), generated / "landing",
                  generated / "truth", cfg.conf_dir / "sources.yaml")
    for feed in FEEDS:
        shutil.copytree(generated / "landing" / feed, root / "landing" / feed)
    bronze_ingest.run_ingest(spark, cfg, pipeline.new_run(cfg, bronze_ingest.JOB, D1, "safety__ingest"), D1)
    return root


def _copy(bank: Path, to: Path):
    """A lakehouse of its own, holding the bank's landing files and bronze."""
    for part in ("landing", "lakehouse"):
        shutil.copytree(bank / part, to / part)
    return make_config(to)


@pytest.fixture(scope="module")
def reference(spark, bank, tmp_path_factory) -> list[tuple]:
    """silver.accounts as one uninterrupted conform of the bank's day makes it."""
    cfg = _copy(bank, tmp_path_factory.mktemp("safety_reference"))
    silver_conform.run_conform(spark, cfg, _run(cfg, "safety__reference"), D1, [ACCOUNTS])
    return _rows(spark, cfg, ACCOUNTS)


def _conform(root: Path, run_id: str, log: Path, **extra: str) -> subprocess.Popen:
    """Start `python -m jobs.silver_conform` for silver.accounts on the lakehouse under `root`, output to `log`."""
    command = [sys.executable, "-m", "jobs.silver_conform", "--date", D1.isoformat(), "--table", ACCOUNTS,
               "--run-id", run_id]
    return subprocess.Popen(command, cwd=PROJECT, env={**_environ(root), **extra}, text=True,
                            stdout=log.open("w", encoding="utf-8"), stderr=subprocess.STDOUT)


CRASH_POINTS = ("before_commit", "during_gate", "after_commit")


@pytest.fixture(scope="module")
def job_runs(bank, tmp_path_factory) -> dict[str, tuple[Path, int, str]]:
    """Job processes on lakehouses of their own, all started at once (JVM start-up dominates, so they share
    the wait): two first conforms racing on one lakehouse, and one conform killed at each crash point.
    Per run: its lakehouse folder, exit code and output."""
    race = tmp_path_factory.mktemp("safety_race")
    _copy(bank, race)
    runs = {f"race{i}": (race, _conform(race, f"safety__race{i}", race / f"race{i}.log")) for i in range(2)}
    for point in CRASH_POINTS:
        root = tmp_path_factory.mktemp(f"safety_crash_{point}")
        _copy(bank, root)
        crash = {faults.ENV: f"silver_conform.{point}:{ACCOUNTS}"}
        runs[point] = (root, _conform(root, "safety__crash", root / f"{point}.log", **crash))
    results = {}
    for key, (root, process) in runs.items():
        code = process.wait(timeout=600)
        results[key] = (root, code, (root / f"{key}.log").read_text(encoding="utf-8"))
    return results


def _drop_first_record(cfg, feed: str) -> list[str]:
    """Re-deliver a landing CSV without one record; returns that record's fields."""
    (path,) = (Path(cfg.path(cfg.lakehouse.landing)) / feed / f"date={D1}").iterdir()
    contract = load_catalog(cfg).feed(*feed.split("/"))
    delimiter, names = contract.delimiter, [c.name for c in contract.columns]
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    # The first one-line record whose key no other line repeats: its rows in silver are its alone.
    ids = [tuple(line.split(delimiter)[names.index(k)] for k in contract.key) for line in lines]
    drop = next(i for i in range(1, len(lines)) if '"' not in lines[i] and ids.count(ids[i]) == 1)
    path.write_text("".join(lines[:drop] + lines[drop + 1:]), encoding="utf-8")
    return lines[drop].rstrip("\r\n").split(delimiter)


# Per table kind: the feed whose file is re-delivered, and which silver rows its first record made.
REDELIVERED = {
    "silver.customer_records": ("core_banking/customers",                    # SCD2, rebuild
                                lambda r, f: (r.source_system, r.source_record_id) == ("core_banking", f[0])),
    "silver.card_transactions": ("cards/transactions", lambda r, f: r.txn_id == f[0]),   # fact, incremental
    "silver.balances": ("core_banking/balances",                             # snapshot, incremental
                        lambda r, f: (r.account_id, r.balance_date.isoformat()) == (f[0], f[1])),
}


@pytest.mark.slow
def test_redelivered_file_without_a_record_removes_its_rows_from_silver_per_table_kind(spark, bank, tmp_path):
    cfg = _copy(bank, tmp_path)
    names = list(REDELIVERED)
    silver_conform.run_conform(spark, cfg, _run(cfg, "safety__day1"), D1, names)
    before = {name: io.read(spark, cfg, name).collect() for name in names}
    dropped = {name: _drop_first_record(cfg, feed) for name, (feed, _) in REDELIVERED.items()}
    bronze_ingest.run_ingest(spark, cfg, pipeline.new_run(cfg, bronze_ingest.JOB, D1, "safety__redelivery"), D1)
    results = silver_conform.run_conform(spark, cfg, _run(cfg, "safety__day1_again"), D1, names)
    for name, (_, made_by) in REDELIVERED.items():
        retracted = [r for r in before[name] if made_by(r, dropped[name])]
        expected = sorted(tuple(r) for r in before[name] if not made_by(r, dropped[name]))
        assert retracted, f"{name}: the dropped record was in silver before"
        assert _rows(spark, cfg, name) == expected, f"{name}: exactly the dropped record's rows are gone"
        assert results[name].deleted == len(retracted), name
        assert _passed_current(spark, cfg, name)


@pytest.mark.slow
def test_two_first_conforms_at_once_one_wins_the_other_fails_clearly(spark, job_runs, reference):
    (root, *_), outcomes = job_runs["race0"], [job_runs[k][1:] for k in ("race0", "race1")]
    cfg = make_config(root)
    codes = sorted(code for code, _ in outcomes)
    assert codes[0] == 0 and codes[1] != 0, [(c, out[-2000:]) for c, out in outcomes]
    loser = next(out for code, out in outcomes if code != 0)
    assert f"{ACCOUNTS}: another run created this table at the same time; rerun" in loser, loser[-3000:]
    assert _rows(spark, cfg, ACCOUNTS) == reference, "each row exactly once"
    assert [h.operation for h in io.history(spark, cfg, ACCOUNTS).collect()] == ["CREATE TABLE AS SELECT"]
    assert _passed_current(spark, cfg, ACCOUNTS)


@pytest.mark.slow
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_9_in_the_conform_then_a_rerun_gives_the_uninterrupted_result(spark, job_runs, reference, point):
    root, code, output = job_runs[point]
    cfg = make_config(root)
    assert code == -9, output[-3000:]
    assert io.exists(spark, cfg, ACCOUNTS) == (point == "after_commit"), "a table exists only once committed"
    if point == "after_commit":
        assert not _passed_current(spark, cfg, ACCOUNTS), "killed before its pass was recorded"
    stats = silver_conform.run_conform(spark, cfg, _run(cfg, "safety__rerun"), D1, [ACCOUNTS])[ACCOUNTS]
    assert stats.version == (None if point == "after_commit" else 0)
    assert _rows(spark, cfg, ACCOUNTS) == reference, "0 lost, 0 duplicated, 0 stale"
    assert io.current_version(spark, cfg, ACCOUNTS) == 0
    assert _passed_current(spark, cfg, ACCOUNTS), "every current version has a recorded pass"
