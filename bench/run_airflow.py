"""Benchmark: c360_daily end to end through Airflow (`airflow dags test`) at given bank sizes.

For each size: a fresh lakehouse and AIRFLOW_HOME, the default synthetic bank over its landing
dates, and one c360_daily run per date, in order (a backfill). Prints wall seconds per task
(per date and summed) and in total, and the share of that spent starting JVMs: from the
spark-submit command to the job's SparkSession being ready, read from the task logs. Figures
are appended to bench/results/airflow.jsonl and plotted in bench/results/airflow.png.

Run with `python bench/run_airflow.py --customers 10000 100000` (`--days` to change the dates).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _results  # noqa: E402
from bench._results import RESULTS  # noqa: E402
from c360 import orchestration  # noqa: E402
from c360.config import load_config  # noqa: E402

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z ")


def _time(line: str) -> dt.datetime | None:
    match = _STAMP.match(line)
    return dt.datetime.fromisoformat(match.group(1)) if match else None


def parse_log(path: Path) -> dict[str, dict]:
    """Per task of one `airflow dags test` log: wall seconds, and seconds from spark-submit to a ready session."""
    tasks: dict[str, dict] = {}
    current = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stamp = _time(line)
        if stamp is None:
            continue
        if "[DAG TEST] starting task_id=" in line:
            current = line.split("task_id=", 1)[1].split()[0]
            tasks[current] = {"start": stamp, "submit": None, "ready": None, "end": None}
        elif current and "[DAG TEST] end task task_id=" in line:
            tasks[current]["end"] = stamp
            current = None
        elif current and "Spark-Submit cmd:" in line:
            tasks[current]["submit"] = stamp
        elif current and "c360.spark: spark " in line and tasks[current]["ready"] is None:
            tasks[current]["ready"] = stamp
    figures = {}
    for task_id, t in tasks.items():
        seconds = (t["end"] - t["start"]).total_seconds() if t["end"] else None
        jvm = (t["ready"] - t["submit"]).total_seconds() if t["submit"] and t["ready"] else 0.0
        figures[task_id] = {"seconds": seconds, "jvm_start_seconds": jvm}
    return figures


def bench_size(size: int, days: int, workdir: Path) -> dict:
    """One fresh backfill of `days` dates at `size` customers; per-task and total figures."""
    shutil.rmtree(workdir, ignore_errors=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("C360__")}
    environ.update({
        "C360__LAKEHOUSE__ROOT": str(workdir / "lakehouse"), "C360__LAKEHOUSE__LANDING": str(workdir / "landing"),
        "C360__LAKEHOUSE__TRUTH": str(workdir / "truth"), "C360__LAKEHOUSE__QUALITY": str(workdir / "quality"),
        "C360__LINEAGE__EVENTS": str(workdir / "lineage"), "C360__ORCHESTRATION__AIRFLOW_HOME": str(workdir / "airflow"),
        "C360__DATAGEN__CUSTOMERS": str(size), "C360__DATAGEN__DAYS": str(days),
        "C360__ORCHESTRATION__DEMO": "true", "C360__ORCHESTRATION__RETRIES": "0",
        # One JVM runs at a time: give it most of the machine (24 GiB, identity's DuckDB beside it).
        "C360__SPARK__DRIVER_MEMORY": "4g" if size <= 20_000 else "10g",
    })
    cfg = load_config(environ=environ)
    start = cfg.datagen.start_date
    started = time.perf_counter()
    results = orchestration.backfill(cfg, start, start + dt.timedelta(days=days - 1), environ=environ,
                                     log_dir=workdir / "runs", out=lambda line: sys.stdout.write(line + "\n"))
    total = time.perf_counter() - started
    per_date = {str(day): parse_log(workdir / "runs" / f"{orchestration.DAILY_DAG}_{day.isoformat()}.log")
                for day, _ in results}
    tasks: dict[str, dict] = {}
    for figures in per_date.values():
        for task_id, f in figures.items():
            acc = tasks.setdefault(task_id, {"seconds": 0.0, "jvm_start_seconds": 0.0})
            acc["seconds"] += f["seconds"] or 0.0
            acc["jvm_start_seconds"] += f["jvm_start_seconds"]
    jvm = sum(t["jvm_start_seconds"] for t in tasks.values())
    return {"customers": size, "days": days, "ok": all(code == 0 for _, code in results),
            "total_seconds": round(total, 1), "jvm_start_seconds": round(jvm, 1),
            "jvm_start_share": round(jvm / total, 3) if total else None,
            "tasks": {k: {m: round(v, 1) for m, v in t.items()} for k, t in tasks.items()}, "per_date": {
                d: {k: {m: (round(v, 1) if v is not None else None) for m, v in f.items()} for k, f in figs.items()}
                for d, figs in per_date.items()}}


def show(figures: dict) -> None:
    """Print one size's figures as a table."""
    out = sys.stdout.write
    out(f"\n{figures['customers']:,} customers, {figures['days']} dates: {figures['total_seconds']:.0f}s total, "
        f"{figures['jvm_start_seconds']:.0f}s starting JVMs ({100 * (figures['jvm_start_share'] or 0):.0f}%)"
        f"{'' if figures['ok'] else '  FAILED'}\n")
    out(f"  {'task':24} {'seconds':>8} {'jvm start':>9}   per date\n")
    for task_id, t in figures["tasks"].items():
        dates = "  ".join(f"{(f.get(task_id) or {}).get('seconds') or 0:6.0f}" for f in figures["per_date"].values())
        out(f"  {task_id:24} {t['seconds']:8.0f} {t['jvm_start_seconds']:9.0f}   {dates}\n")


def plot(path: Path) -> None:
    """Per size (newest run of each): stacked seconds per task, the part spent starting JVMs hatched."""
    plt = _results.pyplot()
    latest = {row["customers"]: row for row in _results.read("airflow")}
    runs = [latest[k] for k in sorted(latest)]
    tasks = list(dict.fromkeys(t for r in runs for t in r["tasks"]))
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"{r['customers']:,} customers\n{r['days']} dates" for r in runs]
    bottom = [0.0] * len(runs)
    for i, task in enumerate(tasks):
        color = plt.cm.tab10(i % 10)
        jvm = [r["tasks"].get(task, {}).get("jvm_start_seconds", 0.0) for r in runs]
        work = [r["tasks"].get(task, {}).get("seconds", 0.0) - j for r, j in zip(runs, jvm)]
        ax.bar(labels, jvm, bottom=bottom, color=color, hatch="//", edgecolor="white")
        bottom = [b + j for b, j in zip(bottom, jvm)]
        ax.bar(labels, work, bottom=bottom, color=color, label=task)
        bottom = [b + w for b, w in zip(bottom, work)]
    ax.set_ylabel("wall seconds (2 cores)")
    ax.set_title("c360_daily through Airflow: seconds per task (hatched: JVM start)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    """Run each size, print, record and plot the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".cache" / "bench-airflow")
    args = parser.parse_args()
    stamp = _results.stamp()
    for size in args.customers:
        figures = bench_size(size, args.days, args.workdir / str(size))
        show(figures)
        path = _results.append("airflow", [figures], stamp)
        plot(RESULTS / "airflow.png")
    sys.stdout.write(f"figures appended to {path}, chart {RESULTS / 'airflow.png'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
