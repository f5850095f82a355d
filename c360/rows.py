"""JVM-free appends to catalog tables with delta-rs, for callbacks and commands that start no Spark."""

from __future__ import annotations

import json

from c360.config import Config

_ARROW_TYPES = {"string": "string", "int": "int32", "long": "int64", "double": "float64", "date": "date32",
                "boolean": "bool_"}


def arrow_type(type_name: str):
    """The Arrow type of a catalog column type (the scalar types, and arrays of them)."""
    import pyarrow as pa

    if type_name.startswith("array<") and type_name.endswith(">"):
        return pa.list_(arrow_type(type_name[len("array<"):-1]))
    if type_name == "timestamp":
        return pa.timestamp("us", tz="UTC")
    return getattr(pa, _ARROW_TYPES[type_name])()


def append(cfg: Config, name: str, rows: list[dict], job: str, run_id: str) -> None:
    """Append `rows` to catalog table `name`, creating it from its catalog spec; the commit names job and run."""
    import pyarrow as pa
    from deltalake import CommitProperties, write_deltalake

    from c360 import lineage
    from c360.catalog import load_catalog

    spec = load_catalog(cfg).table(name)
    schema = pa.schema([(c, arrow_type(t)) for c, t in spec.columns.items()])
    retention = f"interval {spec.retention_days} days"
    meta = {"job": job, "run_id": run_id, "env": cfg.env, "git_sha": cfg.run.git_sha}
    write_deltalake(
        lineage.delta_uri(spec.location(cfg)), pa.Table.from_pylist(rows, schema=schema), mode="append",
        description=f"{spec.name}: {spec.grain}", commit_properties=CommitProperties(
            custom_metadata={"userMetadata": json.dumps(meta, sort_keys=True)}),
        # Same retention properties as every Spark-created table (c360.io.ensure_table).
        configuration={"delta.logRetentionDuration": retention, "delta.deletedFileRetentionDuration": retention},
    )
