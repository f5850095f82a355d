"""Task memos (c360.memo): a task is skipped only while everything its last success depended on is unchanged.

JVM-free, as the memo itself: the tables are written with delta-rs. The end-to-end module shows the
skip through Airflow (a whole-date rerun starts no Spark task) and a run after a manual commit.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from deltalake import write_deltalake

from c360 import memo
from c360.catalog import load_catalog
from tests.conftest import make_config

DAY = dt.date(2026, 10, 1)
OUTPUTS = ["silver.accounts"]


def _commit(cfg, name: str, value: int) -> None:
    """One commit of a one-column table at `name`'s catalog location (the memo reads versions only)."""
    write_deltalake(load_catalog(cfg).table(name).location(cfg), pa.table({"v": pa.array([value], pa.int64())}),
                    mode="append")


def _skipped_since(cfg, args: list[str] | None = None) -> str | None:
    return memo.unchanged_since(cfg, memo.memo_for(cfg, "silver_conform", DAY, args or [], OUTPUTS))


def test_a_memo_skips_only_while_inputs_code_settings_and_outputs_are_unchanged(tmp_path):
    cfg = make_config(tmp_path)
    _commit(cfg, "bronze.core_banking_accounts", 1)
    _commit(cfg, "silver.accounts", 1)
    assert _skipped_since(cfg) is None, "nothing recorded yet"

    def succeed(run_id: str) -> None:
        memo.record(cfg, memo.memo_for(cfg, "silver_conform", DAY, [], OUTPUTS), run_id)

    succeed("run-1")
    assert _skipped_since(cfg) == "run-1"
    # A new commit to a table the job reads: it must run.
    _commit(cfg, "bronze.core_banking_accounts", 2)
    assert _skipped_since(cfg) is None
    succeed("run-2")
    assert _skipped_since(cfg) == "run-2"
    # A commit to its output by anyone else (a manual fix, a restore): it must run.
    _commit(cfg, "silver.accounts", 2)
    assert _skipped_since(cfg) is None
    succeed("run-3")
    # Other arguments, another date, other settings, or memos switched off: it must run.
    assert _skipped_since(cfg, ["--full-relink"]) is None
    assert memo.unchanged_since(cfg, memo.memo_for(cfg, "silver_conform", DAY + dt.timedelta(days=1), [],
                                                     OUTPUTS)) is None
    assert _skipped_since(make_config(tmp_path, quality__min_row_ratio_vs_previous="0.5")) is None
    assert _skipped_since(make_config(tmp_path, orchestration__skip_unchanged="false")) is None
    assert _skipped_since(cfg) == "run-3"


def test_the_bronze_memo_follows_the_dates_landing_files(tmp_path):
    cfg = make_config(tmp_path)
    folder = tmp_path / "landing" / "core_banking" / "accounts" / f"date={DAY.isoformat()}"
    folder.mkdir(parents=True)
    (folder / "accounts.csv").write_text("a\n1\n")
    bronze = sorted(t for t in load_catalog(cfg).tables if t.startswith("bronze."))
    first = memo.memo_for(cfg, "bronze_ingest", DAY, [], bronze)
    assert [f[0] for f in first.key["landing"]] == [f"core_banking/accounts/date={DAY.isoformat()}/accounts.csv"]
    memo.record(cfg, first, "run-1")
    assert memo.unchanged_since(cfg, memo.memo_for(cfg, "bronze_ingest", DAY, [], bronze)) == "run-1"
    # A second delivery of the date lands: the ingest must run.
    (folder / "accounts_2.csv").write_text("a\n2\n")
    assert memo.unchanged_since(cfg, memo.memo_for(cfg, "bronze_ingest", DAY, [], bronze)) is None
