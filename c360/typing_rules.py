"""Typed views of raw source strings, driven by the landing contract (shared by bronze and silver)."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from c360.catalog import SourceColumn

DECIMAL = "decimal(18,2)"


def parsed(column: SourceColumn, raw: Column | None = None) -> Column:
    """The typed value of a raw string column (null when empty or unparseable, never an error)."""
    value = F.trim(raw if raw is not None else F.col(column.name))
    if column.type == "date":
        return F.try_to_date(value, column.format)
    if column.type == "timestamp":
        return F.try_to_timestamp(value, F.lit(column.format))
    if column.type == "decimal":
        return value.try_cast(DECIMAL)
    if column.type == "int":
        return value.try_cast("int")
    return F.when(value != "", value)
