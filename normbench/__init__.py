"""normbench: benchmark normalization layers across batch sizes and model families."""

__version__ = "0.1.0"
