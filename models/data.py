"""The exact Delta tables and versions a training frame came from, and a JVM-free reader that records them."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class DatasetRef:
    """One input table: catalog name, Delta location, the version read, and the rows taken from it."""

    name: str
    uri: str
    version: int
    rows: int

    @property
    def tag(self) -> str:
        """`<uri>@v<version>`, the value of the run tag c360.input.<name>."""
        return f"{self.uri}@v{self.version}"


def load_delta(name: str, uri: str, version: int | None = None,
               columns: list[str] | None = None) -> tuple[pd.DataFrame, DatasetRef]:
    """A Delta table (latest or a given version) as pandas, with the DatasetRef that names what was read."""
    from deltalake import DeltaTable

    table = DeltaTable(uri, version=version)
    frame = table.to_pandas(columns=columns)
    return frame, DatasetRef(name=name, uri=uri, version=int(table.version()), rows=len(frame))
