"""cc-backend: job-centric web server, compatible with the Go version."""

__version__ = "0.1.0"
