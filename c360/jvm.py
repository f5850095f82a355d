"""JVM artifacts for Spark: jars fetched once from Maven Central into a project-local cache, and a class
archive (CDS) of what the jobs load, built from them so that each job's JVM starts faster."""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
POM = PROJECT_ROOT / "jars" / "pom.xml"
CACHE = Path(os.environ.get("C360_JAR_CACHE", PROJECT_ROOT / ".cache" / "jars"))
_VERSION_SUFFIX = re.compile(r"-\d[\w.]*(-\d+)?\.jar$")


def _artifact(jar_name: str) -> str:
    """Artifact id of a jar file name, without its version ("jackson-core-2.13.5.jar" -> "jackson-core")."""
    return _VERSION_SUFFIX.sub("", jar_name)


def _pyspark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def fetch(cache: Path = CACHE) -> list[Path]:
    """Copy the pom's dependencies into `cache`, dropping any artifact pyspark already ships."""
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed once to fetch the Spark jars; install it first")
    tmp = cache.with_name(cache.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(
        ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         f"-DoutputDirectory={tmp}", f"-Dmaven.repo.local={cache.parent / 'm2'}"],
        check=True,
    )
    # Spark's own classes win over user jars anyway; dropping older copies of the same
    # artifacts (jackson, hadoop, parquet, log4j) keeps the classpath unambiguous.
    shipped = {_artifact(p.name) for p in _pyspark_jars().glob("*.jar")}
    for jar in tmp.glob("*.jar"):
        if _artifact(jar.name) in shipped:
            jar.unlink()
    shutil.rmtree(cache, ignore_errors=True)
    tmp.rename(cache)
    return sorted(cache.glob("*.jar"))


def jar_paths(cache: Path = CACHE) -> list[Path]:
    """The cached jars Spark should load; an empty cache is an error telling how to fill it."""
    jars = sorted(cache.glob("*.jar"))
    if not jars:
        raise RuntimeError(f"no Spark jars in {cache}: run `make setup` (fetches them once from Maven Central)")
    return jars


def archive_options(archive: str | None) -> list[str]:
    """Driver JVM flags that map the class archive `archive`, when it exists (none otherwise)."""
    if not archive or not Path(archive).is_file():
        return []
    # -Xshare:auto: a JVM or class path the archive does not match runs without it instead of
    # failing; the cds log tags stay quiet so that case does not fill every job log.
    return [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]


def _warm_up(scratch: Path) -> None:
    """What the jobs' JVM does, in miniature: CSV and JSON reads, Delta create, MERGE, history, time travel,
    windows, aggregates, caching and Arrow, so that their classes are loaded and go into the archive."""
    from c360.config import load_config
    from c360.spark import get_spark

    cfg = load_config()
    spark = get_spark(cfg, app_name="c360-class-archive", warehouse=str(scratch / "warehouse"))
    (scratch / "in.csv").write_text("id,name,amount,day\n1,a,1.5,2026-10-01\n2,\"b, c\",2.5,2026-10-02\n")
    (scratch / "in.json").write_text('{"id": 1, "tags": ["x"]}\n')
    csv = spark.read.option("header", True).option("escape", '"').csv(str(scratch / "in.csv"))
    spark.read.json(str(scratch / "in.json")).collect()
    path = str(scratch / "table")
    csv.write.format("delta").save(path)
    csv.createOrReplaceTempView("changes")
    spark.sql(f"MERGE INTO delta.`{path}` t USING changes s ON t.id = s.id "
              "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *")
    spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()
    spark.sql(f"DESCRIBE DETAIL delta.`{path}`").collect()
    spark.read.format("delta").option("versionAsOf", 0).load(path).count()
    table = spark.read.format("delta").load(path).persist()
    spark.sql("SELECT 1").collect()
    table.createOrReplaceTempView("t")
    spark.sql("SELECT id, sum(amount) OVER (PARTITION BY name ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING "
              "AND CURRENT ROW) AS running, sha2(to_json(struct(*)), 256) AS h FROM t").collect()
    spark.sql("SELECT name, count(*), max(day) FROM t GROUP BY name").toPandas()
    table.localCheckpoint().count()
    from pyspark import SparkContext

    proc = getattr(SparkContext._gateway, "proc", None)
    spark.stop()
    # The JVM writes the archive as it exits, which it does when its stdin closes: wait for that
    # here, or this process would end first and the archive be read half-written.
    if proc is not None:
        proc.stdin.close()
        proc.wait(timeout=600)


def build_archive(archive: Path) -> Path | None:
    """Run the warm-up in a JVM that dumps its loaded classes to `archive` at exit; None when the JVM cannot."""
    import tempfile

    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".tmp")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="c360-archive-") as scratch:
        env = {**os.environ, "C360__SPARK__CLASS_ARCHIVE": "", "C360__SPARK__LOG_LEVEL": "ERROR",
               "C360__SPARK__DRIVER_JAVA_OPTIONS": f"-XX:ArchiveClassesAtExit={partial} -Xlog:cds=off "
                                                   "-Xlog:cds+dynamic=off",
               "C360__LAKEHOUSE__ROOT": scratch}
        env.pop("PYSPARK_SUBMIT_ARGS", None)
        code = f"from pathlib import Path; from c360.jvm import _warm_up; _warm_up(Path({scratch!r}))"
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT)
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        log.warning("no class archive: the warm-up JVM exited with %d; jobs start without one", done.returncode)
        return None
    partial.replace(archive)
    return archive


def main(argv: list[str] | None = None) -> int:
    """`python -m c360.jvm fetch|list|archive`."""
    parser = argparse.ArgumentParser(prog="python -m c360.jvm", description=__doc__)
    parser.add_argument("command", choices=["fetch", "list", "archive"])
    args = parser.parse_args(argv)
    if args.command == "archive":
        from c360.config import load_config

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        cfg = load_config()
        if not cfg.spark.class_archive:
            log.info("no class archive configured (spark.class_archive); nothing to build")
            return 0
        built = build_archive(Path(cfg.path(cfg.spark.class_archive)))
        if built is not None:
            sys.stdout.write(f"{built} ({built.stat().st_size // 2**20} MiB)\n")
        return 0
    jars = fetch() if args.command == "fetch" else jar_paths()
    for jar in jars:
        sys.stdout.write(f"{jar}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
