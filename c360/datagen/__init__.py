"""Synthetic retail bank: source-system landing files per conf/sources.yaml, plus the hidden truth."""

from c360.datagen.bank import DatagenParams, generate_bank
from c360.datagen.systems import SourceVariant

__all__ = ["DatagenParams", "SourceVariant", "generate_bank"]
