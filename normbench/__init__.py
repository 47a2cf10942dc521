"""normbench: benchmarks for normalization layers."""

__version__ = "0.1.0"
