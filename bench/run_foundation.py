"""Benchmark: generate + bronze ingest + silver conform at given bank sizes.

Prints wall time, rows per second and peak memory (Python + Spark JVM, sampled) per step,
appends the figures to bench/results/foundation.jsonl and plots bench/results/foundation.png.
Run with `make bench` or `python bench/run_foundation.py --customers 10000 100000`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _results  # noqa: E402
from bench._results import RESULTS  # noqa: E402
from c360 import io, pipeline  # noqa: E402
from c360.catalog import load_catalog  # noqa: E402
from c360.config import load_config  # noqa: E402
from c360.datagen import DatagenParams, generate_bank  # noqa: E402
from c360.spark import get_spark  # noqa: E402
from jobs import bronze_ingest, silver_conform  # noqa: E402



class PeakMemory:
    """Samples the RSS of this process and its children (the Spark JVM) every 0.2 s."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:
                rss = 0
            self.peak = max(self.peak, rss)
            self._stop.wait(0.2)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def step(figures: list, size: int, name: str, rows_fn):
    """Time a step, sample its peak memory, and record rows per second."""
    started = time.perf_counter()
    with PeakMemory() as mem:
        yield
    seconds = time.perf_counter() - started
    rows = rows_fn()
    figures.append({"customers": size, "step": name, "seconds": round(seconds, 1), "rows": rows,
                    "rows_per_s": round(rows / seconds) if seconds else None, "peak_rss_gib": round(mem.peak / 2**30, 2)})
    sys.stdout.write(json.dumps(figures[-1]) + "\n")
    sys.stdout.flush()


def bench_size(size: int, days: int, workdir: Path) -> list[dict]:
    """Run generate, ingest and conform for one bank size in a fresh lakehouse."""
    shutil.rmtree(workdir, ignore_errors=True)
    environ = {"C360__LAKEHOUSE__ROOT": str(workdir / "lakehouse"), "C360__LAKEHOUSE__LANDING": str(workdir / "landing"),
               "C360__LAKEHOUSE__TRUTH": str(workdir / "truth"), "C360__LAKEHOUSE__QUALITY": str(workdir / "quality"),
               "C360__SPARK__DRIVER_MEMORY": "12g"}
    cfg = load_config(environ=environ)
    figures: list[dict] = []
    params = dataclasses.replace(DatagenParams(), customers=size, days=days)
    manifest = {}
    with step(figures, size, "generate", lambda: sum(f["records"] for f in manifest["files"])):
        manifest.update(generate_bank(params, workdir / "landing", workdir / "truth", cfg.conf_dir / "sources.yaml"))
    spark = get_spark(cfg)
    dates = [params.start_date + dt.timedelta(days=i) for i in range(days)]
    bronze = [f.bronze_table for f in load_catalog(cfg).feeds.values()]
    with step(figures, size, "bronze_ingest", lambda: sum(io.read(spark, cfg, t).count() for t in bronze)):
        for day in dates:
            bronze_ingest.run_ingest(spark, cfg, pipeline.new_run(cfg, bronze_ingest.JOB, day, f"bench__{day}"), day)
    silver = [s.table for s in silver_conform.STEPS]
    with step(figures, size, "silver_conform", lambda: sum(io.read(spark, cfg, t).count() for t in silver)):
        for day in dates:
            silver_conform.run_conform(spark, cfg, pipeline.new_run(cfg, silver_conform.JOB, day, f"bench__{day}"), day)
    return figures


def plot(path: Path) -> None:
    """Bar chart of seconds per step for each size: the newest recorded figures of each size."""
    plt = _results.pyplot()
    latest: dict = {}
    for row in _results.read("foundation"):
        latest[(row["customers"], row["step"])] = row
    sizes = sorted({size for size, _ in latest})
    steps = list(dict.fromkeys(step for _, step in latest))
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(sizes)
    for i, size in enumerate(sizes):
        secs = [latest[(size, s)]["seconds"] if (size, s) in latest else 0 for s in steps]
        ax.bar([x + i * width for x in range(len(steps))], secs, width, label=f"{size:,} customers")
    ax.set_xticks([x + width * (len(sizes) - 1) / 2 for x in range(len(steps))], steps)
    ax.set_ylabel("wall seconds (2 cores)")
    ax.set_title("Foundation pipeline: seconds per step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    """Parse sizes, run each, print and record figures, plot them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".cache" / "bench")
    args = parser.parse_args()
    pipeline.configure_logging()
    stamp = _results.stamp()
    # Each size's figures are recorded as soon as it finishes, so a long larger size loses nothing.
    for size in args.customers:
        _results.append("foundation", bench_size(size, args.days, args.workdir / str(size)), stamp)
        plot(RESULTS / "foundation.png")
    sys.stdout.write(f"figures appended to {RESULTS / 'foundation.jsonl'}, chart {RESULTS / 'foundation.png'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
