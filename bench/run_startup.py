"""Benchmark: what every Spark task pays before it touches its data, with and without the start-up settings.

Each trial is a fresh Python process, as an Airflow task's spark-submit is: it creates the job's
SparkSession, reads one small Delta table once, and imports Great Expectations (every job gates
its writes). Four JVM set-ups are compared: the JVM's defaults, the C1 compiler only, the class
archive only, and both (conf/local.yaml). Prints the seconds of each step per trial, appends them
to bench/results/startup.jsonl and plots bench/results/startup.png.
Run with `make bench-startup` or `python bench/run_startup.py --trials 3`; nothing else on the machine.
The archive is built for the run: it is off by default (conf/local.yaml says why).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _results  # noqa: E402
from bench._results import RESULTS  # noqa: E402
from c360 import jvm  # noqa: E402

# One trial: the steps a job takes before its own work, timed inside the process.
_TRIAL = """
import json, sys, time
t0 = time.perf_counter()
from c360.config import load_config
from c360.spark import get_spark
cfg = load_config()
spark = get_spark(cfg)
t1 = time.perf_counter()
spark.read.format("delta").load(sys.argv[1]).count()
t2 = time.perf_counter()
import great_expectations
t3 = time.perf_counter()
print(json.dumps({"session_s": t1 - t0, "first_delta_read_s": t2 - t1, "gx_import_s": t3 - t2}))
"""


def _setups(archive: str) -> dict[str, dict[str, str]]:
    """The JVM set-ups compared, as C360__SPARK__* overrides."""
    c1 = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"
    return {
        "jvm defaults": {"C360__SPARK__DRIVER_JAVA_OPTIONS": "", "C360__SPARK__CLASS_ARCHIVE": ""},
        "C1 only": {"C360__SPARK__DRIVER_JAVA_OPTIONS": c1, "C360__SPARK__CLASS_ARCHIVE": ""},
        "class archive": {"C360__SPARK__DRIVER_JAVA_OPTIONS": "", "C360__SPARK__CLASS_ARCHIVE": archive},
        "both (local.yaml)": {"C360__SPARK__DRIVER_JAVA_OPTIONS": c1, "C360__SPARK__CLASS_ARCHIVE": archive},
    }


def _table(scratch: Path) -> str:
    """A small Delta table for the trials to read, written once by a throw-away session."""
    path = scratch / "table"
    code = ("import sys; from c360.config import load_config; from c360.spark import get_spark; "
            "get_spark(load_config()).range(1000).write.format('delta').save(sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, cwd=ROOT, capture_output=True)
    return str(path)


def _trial(table: str, overrides: dict[str, str], scratch: Path) -> dict:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("C360__")}, **overrides,
           "C360__LAKEHOUSE__ROOT": str(scratch), "C360__SPARK__LOG_LEVEL": "ERROR"}
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    done = subprocess.run([sys.executable, "-c", _TRIAL, table], env=env, cwd=ROOT, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def plot(rows: list[dict]) -> Path:
    """Stacked bars of the newest run: median seconds per step for each set-up."""
    plt = _results.pyplot()
    newest = max(r["at"] for r in rows)
    rows = [r for r in rows if r["at"] == newest]
    setups = list(dict.fromkeys(r["setup"] for r in rows))
    steps = ("session_s", "first_delta_read_s", "gx_import_s")
    fig, ax = plt.subplots(figsize=(7, 4))
    bottom = [0.0] * len(setups)
    for step in steps:
        values = [statistics.median(r[step] for r in rows if r["setup"] == s) for s in setups]
        ax.bar(setups, values, bottom=bottom, label=step.removesuffix("_s").replace("_", " "))
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_ylabel("seconds (median of trials)")
    ax.set_title(f"Start-up of one Spark task, {rows[0]['cpus']} cores ({newest[:10]})")
    ax.legend()
    fig.tight_layout()
    path = RESULTS / "startup.png"
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> int:
    """Time each JVM set-up `--trials` times and record the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args(argv)
    at, rows = _results.stamp(), []
    with tempfile.TemporaryDirectory(prefix="c360-bench-startup-") as scratch:
        # Not built by `make setup` (see spark.class_archive in conf/local.yaml): one for this run.
        archive = jvm.build_archive(Path(scratch) / "jvm" / "c360.jsa")
        if archive is None:
            raise SystemExit("the class archive could not be built; see the log above")
        archive = str(archive)
        table = _table(Path(scratch))
        for trial in range(args.trials):
            for setup, overrides in _setups(archive).items():
                row = {"setup": setup, "trial": trial, **_trial(table, overrides, Path(scratch))}
                row["total_s"] = row["session_s"] + row["first_delta_read_s"] + row["gx_import_s"]
                rows.append(row)
                sys.stdout.write(f"{setup:20} trial {trial}: session {row['session_s']:5.1f} s, first Delta read "
                                 f"{row['first_delta_read_s']:5.1f} s, GX import {row['gx_import_s']:4.1f} s, "
                                 f"total {row['total_s']:5.1f} s\n")
                sys.stdout.flush()
    _results.append("startup", rows, at)
    sys.stdout.write(f"chart: {plot(_results.read('startup'))}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
