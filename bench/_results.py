"""What every benchmark shares: where figures go, appending a run's figures, and a headless pyplot."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def stamp() -> str:
    """The run's UTC timestamp, written with each figure so repeated runs stay apart."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def append(name: str, rows: list[dict], at: str) -> Path:
    """Append `rows` (one JSON line each, with the run's stamp and core count) to results/<name>.jsonl."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.jsonl"
    with open(path, "a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({"at": at, "cpus": os.cpu_count(), **row}) + "\n")
    return path


def read(name: str) -> list[dict]:
    """Every recorded figure of results/<name>.jsonl, oldest first."""
    path = RESULTS / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (benchmarks run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
