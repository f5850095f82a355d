"""Landing-file accounting and bronze ingest on bad deliveries: every file and every line accounted for.

Each test crafts the delivery a platform team would try (a quote that never closes, a header-only
file, a 0-byte file, Latin-1 bytes in a UTF-8 feed, a re-delivery), ingests it with the real job on
the shared SparkSession, and checks bronze, the quarantine and the ingest log against each other.
The `kill -9` tests run the job as `python -m jobs.bronze_ingest` and kill it at three points.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from c360 import io, landing, pipeline
from c360.catalog import SourceColumn, SourceFeed
from jobs import bronze_ingest
from tests.conftest import make_config

DAY = dt.date(2026, 10, 1)
ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS_HEADER = "ACCOUNT_NO,CUST_NO,PRODUCT_CODE,CURRENCY,OPENED_DATE,CLOSED_DATE,STATUS,UPDATED_AT\n"
CUSTOMERS_HEADER = ("CUST_NO,NATIONAL_ID,TITLE,FIRST_NAME,MIDDLE_NAME,LAST_NAME,DATE_OF_BIRTH,EMAIL,PHONE,"
                    "ADDRESS_LINE1,CITY,POSTCODE,COUNTRY,CUSTOMER_SINCE,UPDATED_AT\n")
TXN_HEADER = "Txn ID;Card Account ID;Txn Timestamp;Amount;Currency;MCC;Merchant Country;Channel\n"


def _account(i: int) -> str:
    return f"A{i:04d},C{i:04d},CUR,GBP,2020-01-0{1 + i % 9},,ACTIVE,2026-10-01 08:00:00\n"


def _customer(i: int, first: str = "Ann", last: str = "Smith") -> str:
    return (f"C{i:04d},AB12345{i % 10}C,Ms,{first},,{last},1980-02-0{1 + i % 9},ann{i}@example.com,07700900{i:03d},"
            f"{i} High Street,Leeds,LS1 {i % 9}AA,GB,2015-01-01,2026-10-01 08:00:00\n")


def _deliver(cfg, system: str, feed: str, name: str, content: bytes, day: dt.date = DAY) -> Path:
    folder = Path(cfg.lakehouse.landing) / system / feed / f"date={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return path


def _ingest(spark, cfg, day: dt.date = DAY) -> bronze_ingest.IngestReport:
    return bronze_ingest.run_ingest(spark, cfg, pipeline.new_run(cfg, bronze_ingest.JOB, day), day)


def _log(spark, cfg) -> dict[str, dict]:
    return {r["source_file"]: r.asDict() for r in io.read(spark, cfg, bronze_ingest.INGEST_LOG).collect()}


def _quarantine(spark, cfg, source_file: str) -> list:
    rows = io.read(spark, cfg, bronze_ingest.QUARANTINE).where(f"_source_file = '{source_file}'")
    return rows.orderBy("_record_no").collect()


@pytest.fixture(scope="module")
def bad_delivery(spark, tmp_path_factory):
    """One landing date holding one file per defect class, ingested once."""
    cfg = make_config(tmp_path_factory.mktemp("bad_delivery"))
    accounts = [_account(i) for i in range(1, 288)]
    # Record 20 opens a quote that no later line closes: a CSV parser reads the rest as one value.
    accounts[19] = accounts[19].replace(",CUR,", ',"CUR,')
    _deliver(cfg, "core_banking", "accounts", "accounts_20261001.csv", (ACCOUNTS_HEADER + "".join(accounts)).encode())
    _deliver(cfg, "cards", "transactions", "transactions_20261001.csv", TXN_HEADER.encode())
    _deliver(cfg, "complaints", "cases", "cases_20261001.jsonl", b"")
    customers = (CUSTOMERS_HEADER + _customer(1) + _customer(2, "José", "Müller") + _customer(3)).encode("latin-1")
    _deliver(cfg, "core_banking", "customers", "customers_20261001.csv", customers)
    report = _ingest(spark, cfg)
    return cfg, report


def test_an_unterminated_quote_quarantines_each_line_from_it_and_keeps_the_records_before(spark, bad_delivery):
    cfg, report = bad_delivery
    name = "core_banking/accounts/date=2026-10-01/accounts_20261001.csv"
    entry = _log(spark, cfg)[name]
    # 287 records in 288 lines: 19 accepted before the open quote, its line and the 267 after quarantined.
    assert (entry["status"], entry["physical_lines"], entry["records"], entry["accepted"], entry["quarantined"]) == (
        "split_at_open_quote", 288, 287, 19, 268)
    rows = _quarantine(spark, cfg, name)
    assert [r["_record_no"] for r in rows] == list(range(20, 288))
    assert {r["reason"] for r in rows} == {"unterminated_quote"}
    assert rows[0]["raw_record"].startswith('A0020,C0020,"CUR') and rows[-1]["raw_record"].startswith("A0287,")
    assert max(len(r["raw_record"]) for r in rows) < 100
    bronze = io.read(spark, cfg, "bronze.core_banking_accounts").where(f"_source_file = '{name}'")
    assert sorted(r["account_no"] for r in bronze.collect()) == [f"A{i:04d}" for i in range(1, 20)]
    files = {f["source_file"]: f for f in report.files}
    assert (files[name]["records"], files[name]["accepted"], files[name]["quarantined"]) == (287, 19, 268)


def test_header_only_and_empty_files_are_logged_with_no_records(spark, bad_delivery):
    cfg, _ = bad_delivery
    entries = _log(spark, cfg)
    header_only = entries["cards/transactions/date=2026-10-01/transactions_20261001.csv"]
    assert (header_only["status"], header_only["physical_lines"], header_only["records"], header_only["accepted"]) == (
        "header_only", 1, 0, 0)
    empty = entries["complaints/cases/date=2026-10-01/cases_20261001.jsonl"]
    assert (empty["status"], empty["size_bytes"], empty["physical_lines"], empty["records"]) == ("empty", 0, 0, 0)
    # sha-256 of no bytes: the file is known, so a later non-empty re-delivery is a change.
    assert empty["checksum"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert io.read(spark, cfg, "bronze.cards_transactions").count() == 0
    # Every file that arrived has its row; the log's counts reconcile with bronze and the quarantine.
    assert len(entries) == 4
    for name, entry in entries.items():
        table = bronze_ingest._feed_of(name, cfg).bronze_table
        in_bronze = io.read(spark, cfg, table).where(f"_source_file = '{name}'").count() if io.exists(
            spark, cfg, table) else 0
        assert (entry["accepted"], entry["quarantined"]) == (in_bronze, len(_quarantine(spark, cfg, name))), name


def test_bytes_invalid_in_the_declared_encoding_are_quarantined_never_repaired(spark, bad_delivery):
    cfg, _ = bad_delivery
    name = "core_banking/customers/date=2026-10-01/customers_20261001.csv"
    entry = _log(spark, cfg)[name]
    assert (entry["records"], entry["accepted"], entry["quarantined"]) == (3, 2, 1)
    [row] = _quarantine(spark, cfg, name)
    assert (row["_record_no"], row["reason"], row["field"]) == (2, "bad_encoding", "first_name")
    bronze = io.read(spark, cfg, "bronze.core_banking_customers").collect()
    assert sorted(r["cust_no"] for r in bronze) == ["C0001", "C0003"]
    assert not any("\ufffd" in str(v) for r in bronze for v in r.asDict().values())


def test_a_feed_declared_latin_1_reads_its_accents(spark, tmp_path):
    feed = SourceFeed(system="legacy", feed="people", format="csv", delimiter=",", key=("id",), encoding="iso-8859-1",
                      columns=(SourceColumn("id", "id", "string", required=True), SourceColumn("name", "name", "string")))
    path = tmp_path / "people.csv"
    path.write_bytes("id,name\n1,José Müller\n".encode("latin-1"))
    scanned = landing.scan("legacy/people/date=2026-10-01/people.csv", str(path), feed)
    assert (scanned.valid_encoding, scanned.records, scanned.physical_lines) == (True, 1, 2)
    [row] = landing.read_landing(spark, feed, str(path)).collect()
    assert row["name"] == "José Müller"


@pytest.mark.parametrize("content, lines, records", [
    (b"a,b\n1,2\n3,4\n", 3, 2),
    (b"a,b\n1,2\n3,4", 3, 2),                          # no newline at the end
    (b"a,b\r\n1,2\r\n\r\n3,4\r\n", 4, 2),              # CRLF, a blank line is no record
    (b'a,b\n1,"x\ny"\n3,"say ""hi"""\n', 4, 2),        # a quoted newline and doubled quotes
    (b"\xef\xbb\xbfa,b\n1,2\n", 2, 1),                 # byte-order mark
])
def test_the_scan_counts_records_as_a_csv_parser_does_at_any_chunk_size(tmp_path, monkeypatch, content, lines, records):
    feed = SourceFeed(system="s", feed="f", format="csv", delimiter=",", key=("a",),
                      columns=(SourceColumn("a", "a", "string"), SourceColumn("b", "b", "string")))
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    seen = set()
    for chunk in (1, 2, 3, 7, 1 << 20):
        monkeypatch.setattr(landing, "CHUNK_BYTES", chunk)
        scanned = landing.scan("f.csv", str(path), feed)
        seen.add((scanned.physical_lines, scanned.records, scanned.open_quote_line))
    assert seen == {(lines, records, None)}


def test_a_redelivered_file_replaces_its_rows_and_an_unchanged_rerun_changes_nothing(spark, tmp_path):
    cfg = make_config(tmp_path)
    name = "accounts_20261001.csv"
    _deliver(cfg, "core_banking", "accounts", name, (ACCOUNTS_HEADER + _account(1) + _account(2) + _account(3)).encode())
    _ingest(spark, cfg)
    _deliver(cfg, "core_banking", "accounts", name, (ACCOUNTS_HEADER + _account(1) + _account(3)).encode())
    _ingest(spark, cfg)
    bronze = io.read(spark, cfg, "bronze.core_banking_accounts").collect()
    assert sorted(r["account_no"] for r in bronze) == ["A0001", "A0003"]
    [entry] = _log(spark, cfg).values()
    assert (entry["records"], entry["accepted"]) == (2, 2)
    versions = {t: io.current_version(spark, cfg, t) for t in ("bronze.core_banking_accounts", bronze_ingest.INGEST_LOG)}
    report = _ingest(spark, cfg)
    assert report.totals()["skipped"] == 1
    assert versions == {t: io.current_version(spark, cfg, t) for t in versions}


# ---- kill -9 during ingest ---------------------------------------------------------------------

_RUN_COLUMNS = {"_ingested_at", "ingested_at", "run_id"}
_TABLES = ("bronze.core_banking_accounts", "bronze.cards_transactions", "bronze.quarantine", "bronze.ingest_log")


def _small_landing(cfg) -> None:
    """Three feeds of one date, one with bad records, so every ingest write has rows."""
    accounts = [_account(i) for i in range(1, 40)]
    accounts[4] = accounts[4].replace("GBP", "XXX")
    _deliver(cfg, "core_banking", "accounts", "accounts_20261001.csv", (ACCOUNTS_HEADER + "".join(accounts)).encode())
    txns = "".join(f"T{i:05d};A{i % 39 + 1:04d};2026-10-01T10:{i % 60:02d}:00;{i}.50;GBP;5411;GB;POS\n"
                   for i in range(1, 60))
    _deliver(cfg, "cards", "transactions", "transactions_20261001.csv", (TXN_HEADER + txns).encode())
    _deliver(cfg, "complaints", "cases", "cases_20261001.jsonl", b"")


def _environ(root: Path, crash_at: str | None) -> dict[str, str]:
    cfg_env = {k: v for k, v in os.environ.items() if not k.startswith("C360")}
    return {**cfg_env, "C360__LAKEHOUSE__ROOT": str(root / "lakehouse"), "C360__LAKEHOUSE__LANDING": str(root / "landing"),
            "C360__LAKEHOUSE__QUALITY": str(root / "quality"), "C360__LINEAGE__ENABLED": "false",
            "C360__SPARK__MASTER": "local[1]", "C360__SPARK__SHUFFLE_PARTITIONS": "1",
            "C360__SPARK__DRIVER_MEMORY": "1g", "C360__SPARK__LOG_LEVEL": "ERROR",
            **({"C360_CRASH_AT": crash_at} if crash_at else {})}


def _run_job(root: Path, crash_at: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.bronze_ingest", "--date", DAY.isoformat()], cwd=ROOT,
                          env=_environ(root, crash_at), capture_output=True, text=True, timeout=300)


def _content(spark, cfg) -> dict[str, list[tuple]]:
    content = {}
    for table in _TABLES:
        df = io.read(spark, cfg, table)
        columns = sorted(c for c in df.columns if c not in _RUN_COLUMNS)
        content[table] = sorted(tuple(str(v) for v in r) for r in df.select(*columns).collect())
    return content


@pytest.fixture(scope="module")
def uninterrupted(spark, tmp_path_factory):
    """The small landing ingested once, without faults, in this process."""
    cfg = make_config(tmp_path_factory.mktemp("ingest_reference"))
    _small_landing(cfg)
    _ingest(spark, cfg)
    return _content(spark, cfg)


@pytest.mark.slow
@pytest.mark.parametrize("point", [
    "bronze_ingest.after_file_commit:bronze.core_banking_accounts",   # between two files' bronze writes
    "bronze_ingest.before_quarantine",                                 # every bronze write done, nothing logged
    "bronze_ingest.before_log",                                        # quarantine written, the log not yet
])
def test_a_killed_ingest_rerun_loses_and_duplicates_nothing(spark, uninterrupted, tmp_path, point):
    root = tmp_path
    cfg = make_config(root)
    _small_landing(cfg)
    killed = _run_job(root, crash_at=point)
    assert killed.returncode == -9, killed.stderr[-2000:]
    # The rerun is the same job in this process's session (a second spark-submit would only add a JVM start).
    report = _ingest(spark, cfg)
    assert report.totals()["files"] >= 1
    assert _content(spark, cfg) == uninterrupted


def test_the_ingest_profile_names_each_phase_and_the_spark_jobs_it_ran(bad_delivery):
    from c360 import profile

    cfg, _ = bad_delivery
    [run_dir] = (Path(cfg.lakehouse.root) / "_profiles").iterdir()
    [prof] = profile.load(cfg, run_dir.name)
    phases = {(p["phase"], p["table"]): p for p in prof["phases"]}
    assert {("scan", "bronze.core_banking_accounts"), ("parse", "bronze.core_banking_accounts"),
            ("gate", "bronze.core_banking_accounts"), ("write", "bronze.core_banking_accounts"),
            ("write", "bronze.ingest_log")} <= set(phases)
    gate = phases[("gate", "bronze.core_banking_accounts")]
    assert gate["spark_jobs"] > 0 and 0 < gate["spark_seconds"] <= gate["seconds"]
    assert sum(p["seconds"] for p in prof["phases"]) <= prof["seconds"]
    assert "bronze.core_banking_accounts" in profile.render([prof])
