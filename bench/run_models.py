"""Benchmark: feature store, churn training and batch scoring with reasons, at given bank sizes.

For each size: a one-date synthetic bank through the in-process pipeline (not timed), then, each as a
user runs it: `c360 features --history` (rows/s), `c360 train churn` (seconds; ROC-AUC and PR-AUC of
the logistic baseline and LightGBM on the holdout), `c360 score` (seconds, end to end with its
gate), and the scoring step alone in this process (customers/s: predictions, SHAP contributions and
three reasons in words, on the latest as-of date's customers repeated to at least 100k rows).
Appends the figures to bench/results/models.jsonl and plots bench/results/models.png.
Run with `python bench/run_models.py --customers 10000`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _results  # noqa: E402
from bench._results import RESULTS  # noqa: E402

C360 = str(Path(sys.executable).parent / "c360")


def _environ(work: Path, customers: int) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("C360__")},
            "C360__LAKEHOUSE__ROOT": str(work / "lakehouse"), "C360__LAKEHOUSE__LANDING": str(work / "landing"),
            "C360__LAKEHOUSE__QUALITY": str(work / "quality"), "C360__LAKEHOUSE__TRUTH": str(work / "truth"),
            "C360__LINEAGE__ENABLED": "false", "C360__DATAGEN__DAYS": "1", "C360__DATAGEN__CUSTOMERS": str(customers),
            "C360__SPARK__DRIVER_MEMORY": "8g", "MLFLOW_DISABLE_TELEMETRY": "true"}


def _timed(args: list[str], env: dict[str, str], label: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([C360, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{label} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    print(f"  {label}: {seconds:.1f} s", flush=True)
    return seconds, done.stdout


def _scoring_rate(env: dict[str, str], rows: int) -> tuple[float, int]:
    """Customers per second of the scoring step alone (champion, contributions, reasons) on >= `rows` rows."""
    import pandas as pd

    os.environ.update(env)
    from c360 import features, modeling
    from c360.config import load_config
    from models.data import load_delta
    from models.scoring import score_frame

    cfg = load_config()
    spec = modeling.load_spec(cfg, "churn")
    frame, _ = load_delta("features", str(Path(cfg.path(cfg.lakehouse.root)) / "features" / "customer_daily"))
    latest = frame[frame[spec.as_of] == frame[spec.as_of].max()]
    batch = pd.concat([latest] * max(1, -(-rows // len(latest))), ignore_index=True)
    model = modeling.model_registry(cfg).load_champion("churn")
    descriptions = {f.name: f.description for f in features.load_registry(cfg.conf_dir).features.values()}
    started = time.perf_counter()
    score_frame(spec, model, batch, descriptions=descriptions)
    return len(batch) / (time.perf_counter() - started), len(batch)


def run(customers: int, work: Path) -> dict:
    """All figures of one bank size."""
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = _environ(work, customers)
    print(f"{customers} customers: building a one-date bank in {work} (not timed)", flush=True)
    _timed(["demo", "--in-process", "--customers", str(customers)], env, "bank")
    day = subprocess.run([sys.executable, "-c", "from c360.config import load_config; "
                          "print(load_config().datagen.start_date)"], env=env, capture_output=True,
                         text=True).stdout.strip()
    seconds_features, out = _timed(["features", "--history", "--date", day], env, "features --history")
    feature_rows = sum(int(line.split()[-2]) for line in out.splitlines() if line.startswith("features"))
    seconds_train, out = _timed(["train", "churn"], env, "train churn")
    metrics = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in ("logistic", "lightgbm"):
            metrics[parts[0]] = {"roc_auc": float(parts[2]), "pr_auc": float(parts[4])}
    print("  " + out.strip().replace("\n", "\n  "))
    seconds_score, out = _timed(["score", "--date", day], env, "score")
    rate, scored_rows = _scoring_rate(env, 100_000)
    print(f"  scoring step alone: {scored_rows} rows at {rate:,.0f} customers/s")
    return {"customers": customers, "feature_rows": feature_rows, "features_s": round(seconds_features, 1),
            "feature_rows_per_s": round(feature_rows / seconds_features), "train_s": round(seconds_train, 1),
            "score_job_s": round(seconds_score, 1), "scoring_customers_per_s": round(rate),
            "scoring_rows": scored_rows, **{f"{a}_{m}": v for a, ms in metrics.items() for m, v in ms.items()}}


def plot(rows: list[dict]) -> Path:
    """Holdout ROC-AUC and PR-AUC of each candidate per bank size (newest run per size)."""
    plt = _results.pyplot()
    newest = {r["customers"]: r for r in rows}
    sizes = sorted(newest)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("roc_auc", "pr_auc")):
        width = 0.35
        for k, algorithm in enumerate(("logistic", "lightgbm")):
            values = [newest[s].get(f"{algorithm}_{metric}", 0) for s in sizes]
            ax.bar([i + (k - 0.5) * width for i in range(len(sizes))], values, width, label=algorithm)
        ax.set_xticks(range(len(sizes)), [f"{s:,}" for s in sizes])
        ax.set(title=f"churn, holdout {metric}", xlabel="customers", ylim=(0, 1))
        ax.legend()
    fig.tight_layout()
    path = RESULTS / "models.png"
    fig.savefig(path, dpi=110)
    return path


def main() -> int:
    """Run the benchmark for each --customers size and record the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000])
    parser.add_argument("--work", default="/tmp/c360-bench-models")
    args = parser.parse_args()
    at = _results.stamp()
    rows = [run(n, Path(args.work) / str(n)) for n in args.customers]
    _results.append("models", rows, at)
    print(f"chart: {plot(_results.read('models'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
