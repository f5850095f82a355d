"""Synthetic retail bank: source-system landing files per conf/sources.yaml, plus the hidden truth."""

from c360.datagen.bank import DatagenParams, generate_bank

__all__ = ["DatagenParams", "generate_bank"]
