"""cc-metric-collector: node metric collector, compatible with the Go version."""

__version__ = "0.1.0"
