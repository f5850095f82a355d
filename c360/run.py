"""Run context: which job, run and code version a write belongs to."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass

from c360.config import Config

# Airflow exports these to every task; a standalone run may set C360_RUN_ID itself.
_RUN_ID_VARS = ("C360_RUN_ID", "AIRFLOW_CTX_DAG_RUN_ID")


@dataclass(frozen=True)
class RunContext:
    """Identity of one job run; its metadata goes into every Delta commit the run makes."""

    job: str
    run_id: str
    run_date: dt.date
    git_sha: str
    env: str
    started_at: dt.datetime

    def commit_metadata(self) -> str:
        """JSON for Delta's commitInfo.userMetadata, so DESCRIBE HISTORY names the run."""
        return json.dumps({
            "job": self.job, "run_id": self.run_id, "run_date": self.run_date.isoformat(),
            "git_sha": self.git_sha, "env": self.env,
        }, sort_keys=True)


def new_run(cfg: Config, job: str, run_date: dt.date, run_id: str | None = None,
            now: dt.datetime | None = None) -> RunContext:
    """Start a run of `job` for `run_date`; the run id comes from the argument, the environment or the clock."""
    started = now or dt.datetime.now(dt.timezone.utc).replace(microsecond=0, tzinfo=None)
    run_id = run_id or next((os.environ[v] for v in _RUN_ID_VARS if os.environ.get(v)), None)
    return RunContext(
        job=job, run_id=run_id or f"manual__{started.isoformat()}", run_date=run_date,
        git_sha=cfg.run.git_sha, env=cfg.env, started_at=started,
    )
