"""Records -> persons: connected components over match edges (Splink), then never-match decisions enforced."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Iterable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from splink.clustering import cluster_pairwise_predictions_at_threshold

from c360.identity.backend import Backend
from c360.identity.conf import VetoConf

log = logging.getLogger(__name__)

# Two links of a record to records that cannot be one person are "about as strong" within this
# strength difference (2 bits of match weight for model links; see matching.STRENGTH).
AMBIGUITY_MARGIN = 0.02
CLUSTER_SCHEMA = T.StructType([T.StructField("unique_id", T.StringType()),
                               T.StructField("cluster_key", T.StringType())])


def connected_components(backend: Backend, nodes: DataFrame, edges: DataFrame) -> DataFrame:
    """Every node with the key of its connected component (the smallest node id in it) over `edges`."""
    nodes_sdf = backend.register(nodes.select("unique_id"))
    edges_sdf = backend.register(edges.select("unique_id_l", "unique_id_r"))
    clusters = cluster_pairwise_predictions_at_threshold(
        nodes_sdf, edges_sdf, backend.db_api, node_id_column_name="unique_id")
    renamed = clusters.query_sql("select unique_id, cluster_id as cluster_key from {this}")
    return backend.to_spark(renamed, CLUSTER_SCHEMA)


class _Components:
    """Union-find that refuses a union which would put a never-match pair into one component."""

    def __init__(self, nodes: Iterable[str], never: dict[str, set[str]]):
        self.parent = {n: n for n in nodes}
        self.members = {n: {n} for n in self.parent}
        self.never = never

    def find(self, node: str) -> str:
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: str, b: str) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        small, large = sorted((ra, rb), key=lambda r: len(self.members[r]))
        if any(self.never.get(n, set()) & self.members[large] for n in self.members[small]):
            return False
        self.parent[small] = large
        self.members[large] |= self.members.pop(small)
        return True


def split_conflicts(nodes: list[str], edges: list[tuple[str, str, float]], never: list[tuple[str, str]],
                    margin: float = AMBIGUITY_MARGIN) -> dict[str, str]:
    """Re-cluster one component so no never-match pair ends together: strongest edges are kept first.

    A record whose refused link is about as strong as the link that placed it (within `margin`)
    could belong to either side; it is left on its own rather than given to one side by chance.
    """
    forbidden: dict[str, set[str]] = defaultdict(set)
    for a, b in never:
        forbidden[a].add(b)
        forbidden[b].add(a)
    ordered = sorted(edges, key=lambda e: (-e[2], e[0], e[1]))
    components = _Components(nodes, forbidden)
    placed: dict[str, float] = {}
    refused = []
    for a, b, strength in ordered:
        if components.union(a, b):
            placed[a], placed[b] = max(placed.get(a, strength), strength), max(placed.get(b, strength), strength)
        else:
            refused.append((a, b, strength))
    ambiguous = {n for a, b, strength in refused for n in (a, b) if n in placed and strength >= placed[n] - margin}
    if ambiguous:
        components = _Components(nodes, forbidden)
        for a, b, _ in ordered:
            if a not in ambiguous and b not in ambiguous:
                components.union(a, b)
    keys: dict[str, str] = {}
    for members in components.members.values():
        key = min(members)
        keys.update({m: key for m in members})
    return keys


def conflicting_pairs(clusters: DataFrame, match: DataFrame, veto: VetoConf = VetoConf(),
                      link_type: str = "dedupe_and_link") -> DataFrame:
    """Records a cluster holds that cannot be one person: national ids or birth dates further apart than the
    veto's `max_edits` (a day/month transposition is a keying error, not another person), and with
    link_only two records of one source system.

    Records with a missing birth date can bridge two look-alikes (same name and address); these
    pairs are cut like a steward's never-match so the bridge does not merge them. With link_only
    (each system holds a person once) a chain through look-alikes shows as two records of one system.
    """
    members = clusters.join(match.select("unique_id", "source_system", "national_id", "dob", "dob_transposed"),
                            on="unique_id", how="inner")
    left = members.select(*[F.col(c).alias(f"{c}_l") for c in members.columns])
    right = members.select(*[F.col(c).alias(f"{c}_r") for c in members.columns])
    same_cluster = (F.col("cluster_key_l") == F.col("cluster_key_r")) & (F.col("unique_id_l") < F.col("unique_id_r"))
    conflict = F.lit(False)
    if veto.national_id.enabled:
        conflict = conflict | F.coalesce(
            F.levenshtein("national_id_l", "national_id_r") > veto.national_id.max_edits, F.lit(False))
    if veto.dob.enabled:
        conflict = conflict | F.coalesce(
            (F.levenshtein("dob_l", "dob_r") > veto.dob.max_edits)
            & ~F.coalesce(F.col("dob_transposed_l") == F.col("dob_r"), F.lit(False)), F.lit(False))
    if link_type == "link_only":
        conflict = conflict | (F.col("source_system_l") == F.col("source_system_r"))
    pairs = left.join(right, on=same_cluster, how="inner").filter(conflict)
    return pairs.select("unique_id_l", "unique_id_r")


def enforce_never_match(clusters: DataFrame, edges: DataFrame, never: DataFrame) -> DataFrame:
    """Split the few components that hold a never-match pair; other components pass through unchanged."""
    cl, cr = clusters.alias("cl"), clusters.alias("cr")
    conflicts = (
        never.join(cl, F.col("unique_id_l") == F.col("cl.unique_id"), how="inner")
        .join(cr, F.col("unique_id_r") == F.col("cr.unique_id"), how="inner")
        .filter(F.col("cl.cluster_key") == F.col("cr.cluster_key"))
        .select(F.col("cl.cluster_key").alias("cluster_key"), "unique_id_l", "unique_id_r")
        .collect()
    )
    if not conflicts:
        return clusters
    keys = sorted({r.cluster_key for r in conflicts})
    members = clusters.filter(F.col("cluster_key").isin(keys)).collect()
    inside = edges.join(clusters.filter(F.col("cluster_key").isin(keys)).select(F.col("unique_id").alias("unique_id_l")),
                        on="unique_id_l", how="left_semi").select("unique_id_l", "unique_id_r", "strength").collect()
    relabelled: dict[str, str] = {}
    for key in keys:
        nodes = [m.unique_id for m in members if m.cluster_key == key]
        node_set = set(nodes)
        component_edges = [(e.unique_id_l, e.unique_id_r, float(e.strength)) for e in inside
                           if e.unique_id_l in node_set and e.unique_id_r in node_set]
        pairs = [(c.unique_id_l, c.unique_id_r) for c in conflicts if c.cluster_key == key]
        relabelled.update(split_conflicts(nodes, component_edges, pairs))
    log.info("identity: %d clusters split to honour never-match decisions", len(keys))
    fixed = clusters.sparkSession.createDataFrame(sorted(relabelled.items()), "unique_id string, _new_key string")
    return clusters.join(fixed, on="unique_id", how="left").select(
        "unique_id", F.coalesce("_new_key", "cluster_key").alias("cluster_key"))
