"""Entry points end the same way: a user or data error is one line `c360: error: ...` and its exit code.

The jobs and the `c360` CLI run as real subprocesses, as spark-submit and a shell run them. Only the
landing-file test starts a JVM (about 10 s here); the others fail on config or catalog before Spark.
"""

from __future__ import annotations

import io as stdio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from c360 import entry
from c360.config import PROJECT_ROOT, ConfigError
from c360.errors import (EXIT_DATA_ERROR, EXIT_FAILED, EXIT_USER_ERROR, C360Error, DataError, QualityGateError,
                         UserError)

LANDING_DATE = "2026-10-01"


def _environ(root: Path, **extra: str) -> dict[str, str]:
    """The process environment with a throw-away lakehouse under `root` and no inherited C360 settings."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("C360__", "C360_DEBUG"))}
    environ.update({
        "C360__LAKEHOUSE__ROOT": str(root / "lakehouse"), "C360__LAKEHOUSE__LANDING": str(root / "landing"),
        "C360__LAKEHOUSE__TRUTH": str(root / "truth"), "C360__LAKEHOUSE__QUALITY": str(root / "quality"),
        # One core and a small heap: the job fails on its first file, the machine is shared.
        "C360__SPARK__MASTER": "local[1]", "C360__SPARK__DRIVER_MEMORY": "1g", "C360__SPARK__LOG_LEVEL": "ERROR",
        "C360__LINEAGE__ENABLED": "false",
        **extra,
    })
    return environ


def _run(args: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env=environ, capture_output=True, text=True,
                          timeout=300)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("c360: error: ")]


def test_the_hierarchy_keeps_the_old_names_and_codes():
    assert issubclass(ConfigError, UserError) and issubclass(ConfigError, ValueError)
    assert issubclass(QualityGateError, DataError) and issubclass(DataError, C360Error)
    assert (UserError.exit_code, DataError.exit_code, C360Error.exit_code) == (3, 4, 1)
    from c360 import cli

    assert cli.UserError is UserError and cli.EXIT_USER_ERROR == EXIT_USER_ERROR


def test_a_bug_keeps_its_traceback_and_exits_1_and_debug_shows_it_for_user_errors(capsys):
    def broken() -> int:
        raise KeyError("no such thing")

    def mistaken() -> int:
        raise UserError("table silver.nope is unknown")

    assert entry.run_main(broken) == EXIT_FAILED
    assert "Traceback" in capsys.readouterr().err
    assert entry.run_main(mistaken, debug=False) == EXIT_USER_ERROR
    assert capsys.readouterr().err == "c360: error: table silver.nope is unknown\n"
    assert entry.run_main(mistaken, debug=True) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("c360: error: table silver.nope is unknown\n")
    stream = stdio.StringIO()
    assert entry.report(DataError("3 history findings:\n  x"), stream=stream) == EXIT_DATA_ERROR
    assert stream.getvalue() == "c360: error: 3 history findings:\n  x\n"


@pytest.mark.parametrize("command", [["show", "silver.nope"], ["history", "silver.nope"]])
def test_an_unknown_table_is_one_line_and_exit_3(tmp_path, command):
    done = _run(["-m", "c360.cli", *command], _environ(tmp_path))
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    assert done.stderr.startswith("c360: error: unknown table 'silver.nope'; known tables: ")
    assert len(done.stderr.splitlines()) == 1 and done.stdout == ""


def test_a_landing_date_with_no_files_is_one_line_and_exit_3(tmp_path):
    folder = tmp_path / "landing" / "crm" / "offer_responses" / f"date={LANDING_DATE}"
    folder.mkdir(parents=True)
    (folder / "offer_responses.csv").write_text("offer_id,response,responded_at\n", encoding="utf-8")
    done = _run(["-m", "c360.cli", "ingest", "--date", "2026-10-05"], _environ(tmp_path))
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    assert done.stderr == (f"c360: error: no landing files for 2026-10-05 under {tmp_path / 'landing'}; "
                           f"landed dates: {LANDING_DATE}\n")


def test_a_bad_config_key_from_the_environment_is_one_line_and_exit_3_in_cli_and_jobs(tmp_path):
    environ = _environ(tmp_path, C360__NOPE__X="1")
    cli = _run(["-m", "c360.cli", "tables"], environ)
    assert cli.returncode == EXIT_USER_ERROR, cli.stderr
    assert cli.stderr.splitlines() == [cli.stderr.strip()] and "unknown config key 'nope'" in cli.stderr
    job = _run(["-m", "jobs.publish_gold", "--date", LANDING_DATE], environ)
    assert job.returncode == EXIT_USER_ERROR, job.stderr
    assert _error_lines(job.stderr) == [cli.stderr.strip()] and "Traceback" not in job.stderr


def test_debug_shows_the_traceback_of_a_user_error(tmp_path):
    cli = _run(["-m", "c360.cli", "--debug", "show", "silver.nope"], _environ(tmp_path))
    assert cli.returncode == EXIT_USER_ERROR
    assert "Traceback (most recent call last)" in cli.stderr and "ConfigError" in cli.stderr
    assert cli.stderr.splitlines()[-1].startswith("c360: error: unknown table 'silver.nope'")
    job = _run(["-m", "jobs.publish_gold"], _environ(tmp_path, C360__NOPE__X="1", C360_DEBUG="1"))
    assert job.returncode == EXIT_USER_ERROR and "Traceback (most recent call last)" in job.stderr


def test_a_landing_file_missing_a_column_is_one_line_naming_file_and_column_and_exit_3(tmp_path):
    folder = tmp_path / "landing" / "crm" / "offer_responses" / f"date={LANDING_DATE}"
    folder.mkdir(parents=True)
    # The contract is offer_id,response,responded_at: the export lost its last column.
    (folder / "offer_responses.csv").write_text("offer_id,response\nO1,accepted\n", encoding="utf-8")
    done = _run(["-m", "jobs.bronze_ingest", "--date", LANDING_DATE], _environ(tmp_path))
    assert done.returncode == EXIT_USER_ERROR, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    [line] = _error_lines(done.stderr)
    assert "offer_responses.csv" in line and "missing columns ['responded_at']" in line, line
