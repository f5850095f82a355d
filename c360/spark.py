"""The one SparkSession factory: Delta-enabled, configured from c360.config."""

from __future__ import annotations

import logging
import os
import sys

from pyspark.sql import SparkSession

from c360 import jvm
from c360.config import Config

log = logging.getLogger(__name__)


def session_settings(cfg: Config, warehouse: str | None = None) -> dict[str, str]:
    """Every Spark setting the factory applies, as one dict (so tests and spark-submit agree)."""
    root = cfg.path(cfg.lakehouse.root)
    settings = {
        # Delta Lake: SQL extensions (MERGE, RESTORE, DESCRIBE HISTORY) and its catalog.
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # Jars come from the project-local cache, so Spark starts offline.
        "spark.jars": ",".join(str(p) for p in jvm.jar_paths()),
        # One clock for every timestamp the bank stores, whatever the machine's zone.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(cfg.spark.shuffle_partitions),
        # Delta rebuilds a table's state from its log in 50 partitions by default: on small tables
        # and few cores that scheduling, not the data, dominated every read, MERGE and write
        # (measured: one landing date of a 300-customer bank took 2.4x as long). Sized like shuffles.
        "spark.databricks.delta.snapshotPartitions": str(cfg.spark.shuffle_partitions),
        # VACUUM lists a table's files in this many tasks (10,000 by default): on 2 cores that made
        # a VACUUM of a tiny table take about a minute (measured 55-95 s; 5-14 s at 4). Sized like shuffles.
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(cfg.spark.shuffle_partitions),
        "spark.sql.warehouse.dir": warehouse or f"{root}/_warehouse",
        "spark.driver.memory": cfg.spark.driver_memory,
        # The project's JVM logging (expected warnings stay out of job logs), then conf's JVM flags.
        "spark.driver.extraJavaOptions": " ".join(
            [f"-Dlog4j.configurationFile={cfg.conf_dir / 'log4j2.properties'}", cfg.spark.driver_java_options,
             *jvm.archive_options(cfg.path(cfg.spark.class_archive) if cfg.spark.class_archive else None)]).strip(),
        # The driver loads the jars with its own class loader, however it was started (a session
        # here or spark-submit): Delta and the OpenLineage listener then share one loader (the
        # listener warns, and skips its connector extensions, when they do not), and every driver
        # has the same class path, which a class archive must match. spark.jars still ships them.
        "spark.driver.extraClassPath": os.pathsep.join(str(p) for p in jvm.jar_paths()),
        # Small machine: the UI and its event history cost memory and a port for nothing.
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # Deletion vectors and column mapping stay at Delta's defaults; CDF is set per table.
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Python workers run the same interpreter (and so the same pinned packages) as the driver.
        "spark.pyspark.python": sys.executable,
        # Adaptive execution coalesces the few shuffle partitions further for tiny stages.
        "spark.sql.adaptive.enabled": "true",
    }
    settings.update(cfg.spark.extra)
    return settings


def get_spark(cfg: Config, app_name: str | None = None, warehouse: str | None = None) -> SparkSession:
    """Return the process's SparkSession, creating it from `cfg` on first use."""
    # spark.driver.memory only takes effect before the JVM starts; pyspark reads it from here.
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS", f"--driver-memory {cfg.spark.driver_memory} pyspark-shell")
    builder = SparkSession.builder.master(cfg.spark.master).appName(app_name or cfg.spark.app_name)
    for key, value in session_settings(cfg, warehouse).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.spark.log_level)
    log.info("spark %s on %s, lakehouse root %s", spark.version, cfg.spark.master, cfg.path(cfg.lakehouse.root))
    return spark

