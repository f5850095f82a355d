"""Where Splink runs: an embedded DuckDB fed from Spark through Arrow, or the job's own SparkSession."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from c360.identity.conf import IdentityConf

log = logging.getLogger(__name__)


@dataclass
class Backend:
    """A Splink database API plus the way frames move between it and Spark."""

    name: str
    db_api: Any
    spark: SparkSession
    reliable_checkpoints: bool = False

    @property
    def dialect(self) -> str:
        """Splink's SQL dialect name of the backend."""
        return self.db_api.sql_dialect.sql_dialect_str

    def _materialise(self, df: DataFrame) -> DataFrame:
        """`df` computed once and cut from its lineage (a reliable checkpoint when a folder is set)."""
        return df.checkpoint() if self.reliable_checkpoints else df.localCheckpoint()

    def register(self, df: DataFrame, name: str | None = None):
        """Make a Spark DataFrame a Splink input table of this backend."""
        if self.name == "duckdb":
            table = df.toArrow()
        else:
            # Materialised first: Spark 4.1's CTE optimiser (PushdownPredicatesAndPruneColumnsForCTEDef)
            # fails with "key not found" on Splink's CTE SQL over a deep DataFrame lineage.
            table = self._materialise(df)
        return self.db_api.register(table, table_name=name) if name else self.db_api.register(table)

    def to_spark(self, sdf, schema: T.StructType | None = None) -> DataFrame:
        """A Splink result table as a materialised Spark DataFrame (copied through Arrow from DuckDB)."""
        if self.name == "spark":
            frame = sdf.as_spark_dataframe()
            frame = frame if schema is None else frame.select(*[f.name for f in schema.fields])
            # Materialised, as DuckDB's results are: what the job builds on it then neither carries
            # Splink's whole SQL pipeline in its plans nor recomputes it once close() drops Splink's
            # cached views.
            return self._materialise(frame)
        table = sdf.as_pyarrow_table()
        if schema is not None:
            table = table.select([f.name for f in schema.fields])
        if table.num_rows == 0 and schema is not None:
            return self.spark.createDataFrame([], schema)
        frame = self.spark.createDataFrame(table)
        return frame if schema is None else frame.select(*[frame[f.name].cast(f.dataType) for f in schema.fields])

    def close(self) -> None:
        """Release the backend's tables (DuckDB: the in-memory database; Spark: Splink's cached views)."""
        if self.name == "duckdb":
            self.db_api.duckdb_con.close()
            return
        # Splink keeps every intermediate table as a cached temporary view, and dropping a view
        # uncaches it: without this a long-lived session (a notebook, the tests) fills its memory.
        for table in self.spark.catalog.listTables():
            if table.isTemporary and table.name.startswith("__splink__"):
                self.spark.catalog.dropTempView(table.name)


def _duckdb(conf: IdentityConf):
    import duckdb
    from splink import DuckDBAPI

    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {int(conf.duckdb.threads)}")
    con.execute(f"SET memory_limit = '{conf.duckdb.memory_limit}'")
    if conf.duckdb.temp_directory and "://" not in conf.duckdb.temp_directory:
        os.makedirs(conf.duckdb.temp_directory, exist_ok=True)
        con.execute(f"SET temp_directory = '{conf.duckdb.temp_directory}'")
    # Splink's DuckDB functions (jaro_winkler, levenshtein) are built in; no extension is downloaded.
    return DuckDBAPI(connection=con)


def _spark(spark: SparkSession, conf: IdentityConf):
    from splink import SparkAPI
    from splink.backends.spark import similarity_jar_location

    # The similarity UDFs (jaro_winkler, ...) ship as a jar inside Splink's wheel: adding it to the
    # running session keeps the one SparkSession factory untouched and needs no download.
    spark.sql(f"ADD JAR '{similarity_jar_location()}'")
    sb = conf.spark_backend
    if sb.checkpoint_dir:
        # Reliable checkpoints (register, to_spark) and Splink's parquet lineage breaks go here.
        spark.sparkContext.setCheckpointDir(sb.checkpoint_dir)
    return SparkAPI(spark_session=spark, break_lineage_method=sb.break_lineage_method,
                    num_partitions_on_repartition=sb.num_partitions_on_repartition)


def open_backend(spark: SparkSession, conf: IdentityConf, name: str | None = None) -> Backend:
    """The configured Splink backend (or `name`): duckdb or spark."""
    name = name or conf.backend
    db_api = _duckdb(conf) if name == "duckdb" else _spark(spark, conf)
    log.info("identity: Splink backend %s", name)
    # With a checkpoint folder on shared storage (cluster), frames survive the loss of an executor.
    reliable = name == "spark" and bool(conf.spark_backend.checkpoint_dir)
    return Backend(name=name, db_api=db_api, spark=spark, reliable_checkpoints=reliable)
