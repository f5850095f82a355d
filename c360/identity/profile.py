"""Profile of the match records before training: how filled and how distinct each comparison's fields are.

Training and blocking adapt to it (c360.identity.model): a comparison whose fields are too rarely
filled is left out of the model, and EM passes and deterministic prior rules on such fields are skipped.
"""

from __future__ import annotations

import re

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

# Field -> the match-record column that says whether it is filled (names: both given name and surname).
FIELDS = {"name": "full_name", "given_name": "given_name", "last_name": "last_name", "dob": "dob",
          "email": "email", "phone": "phone_e164", "address_line1": "address_line1", "postcode": "postcode",
          "national_id": "national_id"}
# Match-record column (as blocking and training rules write it) -> the field it derives from.
COLUMN_FIELD = {"given_name": "name", "given_initial": "name", "name_keys": "name", "last_name": "name",
                "last_name_key": "name", "full_name": "name", "dob": "dob", "dob_transposed": "dob",
                "dob_year": "dob", "dob_block": "dob", "email": "email", "email_user": "email",
                "phone_e164": "phone", "address_line1": "address", "postcode": "address",
                "national_id": "national_id"}
# Comparison (its output column name) -> the fields it compares.
COMPARISON_FIELDS = {"name": ("name",), "dob": ("dob",), "email": ("email",), "phone_e164": ("phone",),
                     "address": ("address",), "national_id": ("national_id",)}
ALL = "all"


def profile_records(match: DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """Per source system (and `all`): for each field, records, fill rate and distinct share of filled values."""
    aggregates = [F.count("*").alias("_records")]
    for name, column in FIELDS.items():
        aggregates += [F.count(column).alias(f"{name}__filled"), F.countDistinct(column).alias(f"{name}__distinct")]
    rows = match.groupBy("source_system").agg(*aggregates).collect()
    rows += match.agg(*aggregates).withColumn("source_system", F.lit(ALL)).collect()
    out: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        records = int(row["_records"])
        fields = {}
        for name in FIELDS:
            filled, distinct = int(row[f"{name}__filled"]), int(row[f"{name}__distinct"])
            fields[name] = {"fill_rate": round(filled / records, 4) if records else 0.0,
                            "distinct_share": round(distinct / filled, 4) if filled else 0.0}
        out[row["source_system"]] = {"records": records, "fields": fields}
    return dict(sorted(out.items(), key=lambda kv: (kv[0] == ALL, kv[0])))


def field_fill(profile: dict) -> dict[str, float]:
    """Fill rate of each field over all records; `address` is the better of address line and postcode."""
    fields = profile.get(ALL, {}).get("fields", {})
    fill = {name: v["fill_rate"] for name, v in fields.items()}
    fill["address"] = max(fill.get("address_line1", 0.0), fill.get("postcode", 0.0))
    return fill


def populated_fields(profile: dict, min_fill_rate: float) -> set[str]:
    """Fields filled in at least `min_fill_rate` of all records (and in at least one record)."""
    return {name for name, rate in field_fill(profile).items() if rate >= min_fill_rate and rate > 0}


def rule_fields(rule: str) -> set[str]:
    """Fields a Splink rule written on l./r. columns reads ("l.dob_block = r.dob_block" -> {"dob"})."""
    columns = set(re.findall(r"\b[lr]\.(\w+)", rule))
    return {COLUMN_FIELD.get(c, c) for c in columns}


def render(profile: dict) -> list[str]:
    """The profile as a table: one line per source system, fill rate / distinct share per field."""
    names = list(FIELDS)
    lines = [f"{'system':14} {'records':>8}  " + " ".join(f"{n:>15}" for n in names),
             f"{'':14} {'':>8}  " + " ".join(f"{'fill  distinct':>15}" for _ in names)]
    for system, entry in profile.items():
        cells = [f"{v['fill_rate']:6.1%} {v['distinct_share']:7.1%}" for v in (entry["fields"][n] for n in names)]
        lines.append(f"{system:14} {entry['records']:>8}  " + " ".join(f"{c:>15}" for c in cells))
    return lines
