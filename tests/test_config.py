"""Config loading: overlays, environment overrides, and errors that name the key and the file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from c360.catalog import load_catalog
from c360.config import CONF_DIR, ConfigError, load_config


def _conf_dir(tmp_path: Path, overlay: str) -> Path:
    for name in ("base.yaml", "tables.yaml", "sources.yaml"):
        (tmp_path / name).write_text((CONF_DIR / name).read_text())
    (tmp_path / "local.yaml").write_text(overlay)
    return tmp_path


def test_overlay_and_environment_override_base(tmp_path):
    conf = _conf_dir(tmp_path, "spark:\n  shuffle_partitions: 8\n")
    cfg = load_config(conf_dir=conf, environ={"C360__DATAGEN__CUSTOMERS": "123", "C360_ENV": "local"})
    assert cfg.spark.shuffle_partitions == 8
    assert cfg.datagen.customers == 123
    assert cfg.datagen.start_date == dt.date(2026, 10, 1)
    assert cfg.spark.master == "local[*]"


def test_cluster_overlay_points_at_object_storage():
    cfg = load_config(env="cluster", environ={})
    assert cfg.spark.master.startswith("spark://")
    assert cfg.path(cfg.lakehouse.root).startswith("s3a://")


def test_unknown_key_names_key_and_file(tmp_path):
    conf = _conf_dir(tmp_path, "spark:\n  shuffle_partitons: 8\n")
    with pytest.raises(ConfigError, match=r"spark\.shuffle_partitons.*local\.yaml"):
        load_config(conf_dir=conf, environ={})


def test_mistyped_value_and_unknown_env_are_errors(tmp_path):
    conf = _conf_dir(tmp_path, "")
    with pytest.raises(ConfigError, match="datagen.customers"):
        load_config(conf_dir=conf, environ={"C360__DATAGEN__CUSTOMERS": "many"})
    with pytest.raises(ConfigError, match="C360__"):
        load_config(conf_dir=conf, environ={"C360__SPARK__NO_SUCH": "1"})
    with pytest.raises(ConfigError, match="staging"):
        load_config(env="staging", conf_dir=conf, environ={})


def test_catalog_declares_grain_and_keys_for_every_table():
    catalog = load_catalog(load_config(environ={}))
    assert len(catalog.feeds) == 14
    for name, table in catalog.tables.items():
        assert table.grain, name
        assert table.keys and set(table.keys) <= set(table.columns), name
    assert catalog.table("silver.customer_records").change_data_feed
    assert catalog.table("bronze.cards_transactions").partition_by == ("_landing_date",)
