"""JVM artifacts for Spark: fetched once from Maven Central into a project-local cache."""

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


def main(argv: list[str] | None = None) -> int:
    """`python -m c360.jvm fetch|list`."""
    parser = argparse.ArgumentParser(prog="python -m c360.jvm", description=__doc__)
    parser.add_argument("command", choices=["fetch", "list"])
    args = parser.parse_args(argv)
    jars = fetch() if args.command == "fetch" else jar_paths()
    for jar in jars:
        sys.stdout.write(f"{jar}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
