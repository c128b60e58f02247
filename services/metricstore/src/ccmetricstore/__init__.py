"""cc-metric-store: in-memory time-series store with checkpoints, compatible with the Go version."""

__version__ = "0.1.0"
