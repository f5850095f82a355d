"""Train and gate one model of conf/models.yaml (or a --spec file): candidates logged to MLflow, the best
registered as challenger and promoted to champion only through the gate.

Training reads Delta with delta-rs and trains on pandas frames, so it starts no JVM: spark-submit runs
this file as a plain Python driver, and `python -m jobs.train_model` is the same. The service is
c360.modeling.
"""

from __future__ import annotations

import argparse
import os

from c360 import modeling
from c360.config import load_config
from c360.pipeline import configure_logging, emit

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """spark-submit / python -m entry point: train MODEL (or --spec FILE) and print the gate's decision as JSON."""
    parser = argparse.ArgumentParser(prog="jobs.train_model", description=__doc__)
    parser.add_argument("model", nargs="?", help="a model of conf/models.yaml")
    parser.add_argument("--spec", help="a spec file instead")
    parser.add_argument("--date", help="the run date (recorded only; training uses every labelled as-of date)")
    parser.add_argument("--run-id", default=os.environ.get("C360_RUN_ID"))
    args = parser.parse_args(argv)
    if bool(args.model) == bool(args.spec):
        parser.error("give a model name or --spec FILE")
    configure_logging()
    cfg = load_config()
    outcome = modeling.train(cfg, modeling.load_spec(cfg, args.model, args.spec), args.run_id or f"manual__{modeling.JOB}")
    emit({"model": outcome.model, "version": outcome.version, "promoted": outcome.promoted, "reasons": outcome.reasons,
          "champion": outcome.champion_version, "card": outcome.card_uri})
    return 0


if __name__ == "__main__":
    from c360.entry import run_main

    raise SystemExit(run_main(main))
