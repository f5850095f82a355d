"""Shared wiring of the c360 DAGs: defaults from conf, table Assets and the spark-submit task.

Kept light for the DAG processor: Airflow's SDK, the Spark provider's operator and c360's
config loader only. Spark settings are computed when a task runs, not while the file parses.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from c360 import orchestration
from c360.config import Config, load_config

CFG = load_config()
TAGS = ["c360", f"env:{CFG.env}"]


def default_args(cfg: Config) -> dict:
    """Task defaults every c360 DAG shares: owner, retries with backoff, timeout, run-log callbacks."""
    o = cfg.orchestration
    return {
        "owner": o.owner,
        "retries": o.retries,
        "retry_delay": dt.timedelta(seconds=o.retry_delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(seconds=o.max_retry_delay_seconds),
        "execution_timeout": dt.timedelta(minutes=o.task_timeout_minutes),
        "on_success_callback": orchestration.on_task_success,
        "on_failure_callback": orchestration.on_task_failure,
        "on_retry_callback": orchestration.on_task_retry,
    }


def table_asset(name: str) -> Asset:
    """The Airflow Asset of a catalog table, keyed by its Delta table URI."""
    return Asset(name=name, uri=orchestration.table_uri(CFG, name), group="c360")


class C360SparkSubmitOperator(SparkSubmitOperator):
    """spark-submit of one c360 job (jobs/<job>.py) for the run's logical date, publishing its tables as Assets."""

    def __init__(self, *, job: str, tables: list[str] = (), job_args: list[str] = (),
                 run_date: str = "{{ ds }}", **kwargs) -> None:
        super().__init__(
            application=orchestration.job_path(job),
            application_args=["--date", run_date, "--run-id", "{{ run_id }}", *job_args],
            name=f"c360_{job}",
            conn_id=CFG.orchestration.spark_conn_id,
            driver_memory=CFG.spark.driver_memory,
            py_files=CFG.orchestration.py_files or None,
            outlets=[table_asset(t) for t in tables],
            **kwargs,
        )
        self.job, self.tables = job, list(tables)

    def execute(self, context) -> None:
        """Fill in Spark settings from conf, run spark-submit, and fail without retries on a user or data error."""
        cfg = load_config()
        # A templated flag that rendered empty (e.g. --full-relink off) is no argument at all.
        self.application_args = [a for a in self.application_args if a]
        self.conf = {**orchestration.spark_submit_conf(cfg), **(self.conf or {})}
        # Skipped, with no JVM started, when the last success for this date left everything as it is now.
        memo = orchestration.task_memo(cfg, self.job, self.application_args, self.tables)
        if memo is not None and orchestration.skip_if_unchanged(cfg, memo, self.task_id):
            return
        master = SparkSubmitHook(conn_id=self._conn_id)._connection["master"]
        self.env_vars = {**orchestration.job_env(master, self.name), **(self.env_vars or {})}
        try:
            super().execute(context)
            if memo is not None:
                orchestration.record_memo(cfg, memo, context["run_id"])
        except AirflowException as exc:
            code = self._exit_code(str(exc))
            if not orchestration.permanent_failure(code):
                raise
            # The job's exit code says the input is at fault (2: bad arguments; 3: a user error such
            # as a landing file breaking its contract; 4: data, such as a failed quality gate):
            # retrying the same input cannot succeed, so fail now. A gated write committed nothing that failed its gate,
            # and downstream tasks do not run.
            report = orchestration.error_report(str(exc)) or str(exc)
            raise AirflowFailException(f"{self.name} failed with exit code {code}, not retried:\n{report}") from None

    def _exit_code(self, message: str) -> int | None:
        """spark-submit's exit code, which in client mode is the job driver's own (c360.errors codes)."""
        process = getattr(self._hook, "_submit_sp", None)
        code = getattr(process, "returncode", None)
        return code if code is not None else orchestration.submit_exit_code(message)
