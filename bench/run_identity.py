"""Benchmark: identity resolution at given numbers of source customer records (DuckDB and Spark backends).

Input preparation is not timed: the synthetic bank's persons and their customer records are
simulated with the generator's own functions (customer feeds and card accounts only - no
transactions), written as landing files with the truth, and conformed into silver with the real
bronze validation and silver transforms. Then one full resolution run (model trained first) is
timed per phase: features, training (u + EM), blocking, prediction, clustering, tables (stable
ids, xref, golden records, review queue, events) and writes (merges behind their quality gates).
Accuracy against the truth is measured afterwards by the explicit evaluation (not timed: a run
never evaluates itself). Figures are printed, appended to bench/results/identity.jsonl and
plotted in bench/results/identity.png.

    python bench/run_identity.py --records 100000 1000000 --backend duckdb
    python bench/run_identity.py --records 100000 --backend spark
    python bench/run_identity.py --records 100000 --variant no_email no_national_id sparse email_in_digital_only

A variant (issue #19) drops or degrades customer fields as tests/test_identity_variants.py does;
their F1 is plotted per variant in bench/results/identity_variants.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import glob
import json
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyspark.sql import functions as F  # noqa: E402

from bench.run_foundation import PeakMemory  # noqa: E402
from bench import _results  # noqa: E402
from bench._results import RESULTS  # noqa: E402
from c360 import io, landing, pipeline  # noqa: E402
from c360.catalog import load_catalog  # noqa: E402
from c360.config import load_config  # noqa: E402
from c360.datagen import products  # noqa: E402
from c360.datagen.bank import Bank, DatagenParams, LandingWriter, write_truth  # noqa: E402
from c360.datagen.contract import load_contract  # noqa: E402
from c360.datagen.people import make_persons  # noqa: E402
from c360.datagen.systems import (CUSTOMER_FEEDS, DEFAULT_VARIANT, DUPLICATE_RATE, SourceVariant,  # noqa: E402
                                  build_initial_records, date_to_day, render_records)
from c360.identity import evaluation, service  # noqa: E402
from c360.identity.conf import load_identity_conf  # noqa: E402
from c360.spark import get_spark  # noqa: E402
from jobs import bronze_ingest, silver_conform  # noqa: E402

# Source customer records per person in the generated bank (measured: 28,808 records / 10,059 persons).
RECORDS_PER_PERSON = 2.86
FEEDS = [*CUSTOMER_FEEDS.items(), ("cards", "accounts")]
START = dt.date(2026, 10, 1)
# The banks of issue #19, as in tests/test_identity_variants.py.
VARIANTS = {
    "default": DEFAULT_VARIANT,
    "no_email": SourceVariant(drop_fields=("email",)),
    "no_national_id": SourceVariant(drop_fields=("national_id",)),
    "sparse": SourceVariant(drop_fields=("email", "national_id"), extra_dob_missing=0.3, name_swap_rate=0.05),
    "email_in_digital_only": SourceVariant(email_systems=("digital",)),
}


def simulate_customers(records: int, seed: int, landing: Path, truth: Path, sources_yaml: Path,
                       variant: SourceVariant = DEFAULT_VARIANT) -> int:
    """Persons, their customer records (as `variant` shows them) and card accounts as landing files
    (one date) plus the truth."""
    params = DatagenParams(customers=max(100, round(records / RECORDS_PER_PERSON)), seed=seed, start_date=START,
                           days=1)
    start_day = date_to_day(START)
    persons = make_persons(params.customers, start_day, 1, np.random.default_rng([seed, 1]), random.Random(seed))
    recs = build_initial_records(persons, start_day, random.Random(seed + 1),
                                 duplicate_rate=0.0 if variant.one_record_per_system else DUPLICATE_RATE)
    contract = load_contract(sources_yaml)
    contract = dataclasses.replace(contract, feeds={k: v for k, v in contract.feeds.items() if k in FEEDS})
    writer = LandingWriter(contract, params, landing, lambda _step: None)
    for system, feed in CUSTOMER_FEEDS.items():
        writer.emit(system, feed, render_records(system, recs.by_system[system], 0, variant, seed))
    cards = products.build_card_accounts(recs.by_system["cards"], persons, start_day, 1,
                                         np.random.default_rng([seed, 2]))
    writer.emit("cards", "accounts", products.account_table(cards, start_day, 1, "cards"))
    _, bad = writer.finish()
    offer_keys = ("offer_id", "person_id", "product_code", "p_accept", "outcome")
    bank = Bank(persons, recs, [], cards, {"txn_id": [], "fraud_pattern": []}, {k: [] for k in offer_keys})
    write_truth(bank, bad, truth)
    return sum(len(recs.by_system[s]) for s in CUSTOMER_FEEDS)


def _typed(spark, cfg, key: str):
    feed = load_catalog(cfg).feed(*key.split("."))
    frames = []
    for path in sorted(glob.glob(f"{cfg.path(cfg.lakehouse.landing)}/{feed.system}/{feed.feed}/date=*/*")):
        validated = bronze_ingest.validate_records(landing.read_landing(spark, feed, path), feed)
        frames.append(validated.filter(F.col("_defect").isNull()).withColumn("_landing_date", F.lit(START)))
    frame = frames[0]
    for other in frames[1:]:
        frame = frame.unionByName(other)
    return silver_conform.typed(frame, feed)


def conform(spark, cfg) -> None:
    """silver.customer_records and silver.accounts from the landing files (real validation and transforms)."""
    run = pipeline.new_run(cfg, "bench_setup", START, "bench__setup")
    inputs = {f"{s}.{f}": _typed(spark, cfg, f"{s}.{f}") for s, f in FEEDS}
    records = silver_conform.STEPS[0].build(inputs, silver_conform.ConformParams())
    io.append(spark, cfg, "silver.customer_records", records, run)
    core = silver_conform.typed(spark.createDataFrame(
        [], ", ".join(f"{c.name} string" for c in load_catalog(cfg).feed("core_banking", "accounts").columns)
        + ", _landing_date date, _record_no long"), load_catalog(cfg).feed("core_banking", "accounts"))
    io.append(spark, cfg, "silver.accounts", silver_conform.build_accounts(core, inputs["cards.accounts"]), run)


def bench(records: int, backend: str, workdir: Path, seed: int, variant: str = "default") -> dict:
    """Prepare one bank in a fresh lakehouse and time a first (training, full) resolution run."""
    shutil.rmtree(workdir, ignore_errors=True)
    environ = {"C360__LAKEHOUSE__ROOT": str(workdir / "lakehouse"), "C360__LAKEHOUSE__LANDING": str(workdir / "landing"),
               "C360__LAKEHOUSE__TRUTH": str(workdir / "truth"), "C360__LAKEHOUSE__QUALITY": str(workdir / "quality"),
               "C360__SPARK__DRIVER_MEMORY": "8g", "C360__SPARK__MASTER": "local[2]"}
    cfg = load_config(environ=environ)
    started = time.perf_counter()
    n = simulate_customers(records, seed, workdir / "landing", workdir / "truth", cfg.conf_dir / "sources.yaml",
                           VARIANTS[variant])
    spark = get_spark(cfg)
    conform(spark, cfg)
    prepare_seconds = time.perf_counter() - started
    run = pipeline.new_run(cfg, service.JOB, START, f"bench__{backend}_{n}")
    started = time.perf_counter()
    with PeakMemory() as memory:
        report = service.run_resolution(spark, cfg, run, backend=backend)
    wall = time.perf_counter() - started
    conf = load_identity_conf(cfg, backend=backend)
    evaluated = evaluation.evaluate(spark, conf, evaluation.current_assignment(io.read(spark, cfg, service.XREF)),
                                    service.match_records(spark, cfg, conf))
    s = report.seconds
    linking = sum(s.get(k, 0.0) for k in ("features", "training", "blocking", "prediction", "clustering"))
    return {
        "records": n, "backend": backend, "variant": variant, "prepare_s": round(prepare_seconds, 1), "wall_s": round(wall, 1),
        "linking_s": round(linking, 1), **{f"{k}_s": round(v, 1) for k, v in s.items() if k != "total"},
        "comparisons": report.comparisons, "customers": report.statistics["clusters"],
        "pairwise_f1": round(evaluated.f1, 4),
        "pairwise_precision": round(evaluated.accuracy["pairwise_precision"], 4),
        "pairwise_recall": round(evaluated.accuracy["pairwise_recall"], 4),
        "bcubed_f1": round(evaluated.accuracy["bcubed_f1"], 4), "look_alike_merges": evaluated.look_alike_merges,
        "blocking_recall": round(evaluated.blocking_recall["recall"], 4),
        "peak_rss_gib": round(memory.peak / 2**30, 2),
    }


PHASES = ("features", "training", "blocking", "prediction", "clustering", "tables", "writes")


def plot(path: Path) -> None:
    """Stacked bars of seconds per phase, the newest figures of each size and backend."""
    plt = _results.pyplot()
    latest: dict = {}
    for row in _results.read("identity"):
        if row.get("variant", "default") == "default":
            latest[(row["backend"], row["records"])] = row
    runs = [latest[k] for k in sorted(latest)]
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"{r['records']:,}\n{r['backend']}" for r in runs]
    bottom = [0.0] * len(runs)
    for phase in PHASES:
        secs = [r.get(f"{phase}_s", 0.0) for r in runs]
        ax.bar(labels, secs, bottom=bottom, label=phase)
        bottom = [b + s for b, s in zip(bottom, secs)]
    # What the wall time holds beyond the phases: the report and MLflow logging (and, in rows recorded
    # before evaluation left the run, scoring against the truth).
    ax.bar(labels, [max(r["wall_s"] - b, 0.0) for r, b in zip(runs, bottom)], bottom=bottom,
           label="report, MLflow", color="lightgrey")
    ax.axhline(300, color="grey", linestyle="--", linewidth=1)
    ax.text(len(runs) - 0.5, 305, "target for 1M: 300 s", ha="right", fontsize=8, color="grey")
    ax.set_ylabel("wall seconds (2 cores)")
    ax.set_title("Identity resolution: seconds per phase (first, training run)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_variants(path: Path) -> None:
    """Pairwise F1, precision and recall per variant (newest run of each), with the issue's floors."""
    plt = _results.pyplot()
    rows = [row for row in _results.read("identity") if row["backend"] == "duckdb"]
    sizes = [row["records"] for row in rows if row.get("variant", "default") != "default"]
    # The default bank at the variants' size, so the bars compare like with like.
    size = max(set(sizes), key=sizes.count) if sizes else None
    latest = {row.get("variant", "default"): row for row in rows if size is None or row["records"] == size}
    names = [v for v in VARIANTS if v in latest]
    floors = {"no_email": 0.97, "no_national_id": 0.97, "sparse": 0.95, "email_in_digital_only": 0.97}
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.27
    for i, metric in enumerate(("pairwise_f1", "pairwise_precision", "pairwise_recall")):
        ax.bar([x + (i - 1) * width for x in range(len(names))], [latest[n][metric] for n in names], width,
               label=metric.replace("pairwise_", ""))
    for x, name in enumerate(names):
        if name in floors:
            ax.hlines(floors[name], x - 1.5 * width, x + 1.5 * width, colors="black", linestyles="--", linewidth=1)
    ax.set_xticks(range(len(names)), [f"{n}\n{latest[n]['records']:,}" for n in names], fontsize=8)
    ax.set_ylim(0.9, 1.0)
    ax.set_ylabel("pairwise, against the truth")
    ax.set_title("Identity per source variant (dashed: the issue's F1 floor)")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    """Run each size on the chosen backend, print the figures and append them to the results file."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[100_000])
    parser.add_argument("--backend", choices=["duckdb", "spark"], default="duckdb")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--variant", nargs="+", choices=sorted(VARIANTS), default=["default"])
    parser.add_argument("--workdir", type=Path, default=ROOT / ".cache" / "bench_identity")
    args = parser.parse_args()
    pipeline.configure_logging()
    stamp = _results.stamp()
    for variant in args.variant:
        for records in args.records:
            figures = bench(records, args.backend, args.workdir / f"{args.backend}_{records}_{variant}", args.seed,
                            variant)
            sys.stdout.write(json.dumps(figures) + "\n")
            sys.stdout.flush()
            _results.append("identity", [figures], stamp)
            plot(RESULTS / "identity.png")
            plot_variants(RESULTS / "identity_variants.png")
    sys.stdout.write(f"figures appended to {RESULTS / 'identity.jsonl'}, chart {RESULTS / 'identity.png'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
