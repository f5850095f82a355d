"""Customer 360 lakehouse library: config, Spark, Delta I/O, quality, synthetic data, CLI."""

__version__ = "0.1.0"
