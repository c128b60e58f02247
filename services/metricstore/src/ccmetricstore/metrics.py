"""Prometheus metrics of the metric store itself (served at `/metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class StoreMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.lines = Counter("ccms_lines_written", "Samples written into memory", ["source"], registry=r)
        self.skipped = Counter(
            "ccms_lines_skipped",
            "Lines not stored, by reason (unknown_metric, no_cluster_or_host, unsafe_name, "
            "syntax_error, from_past)",
            ["reason"],
            registry=r,
        )
        self.requests = Counter(
            "ccms_http_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=r
        )
        self.write_seconds = Histogram(
            "ccms_write_seconds",
            "Time to decode, store and journal one /api/write body",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
            registry=r,
        )
        self.query_seconds = Histogram(
            "ccms_query_seconds",
            "Time to answer one /api/query",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
            registry=r,
        )
        self.nats_messages = Counter("ccms_nats_messages", "NATS messages received", ["subject"], registry=r)
        self.samples = Gauge("ccms_samples", "Samples held in memory", registry=r)
        self.series = Gauge("ccms_series", "Series (level, metric) held in memory", registry=r)
        self.bytes = Gauge("ccms_sample_bytes", "Bytes of sample storage", registry=r)
        self.checkpoints = Counter("ccms_checkpoint_files", "Checkpoint files written", registry=r)
        self.checkpoint_seconds = Gauge(
            "ccms_last_checkpoint_seconds", "Duration of the last checkpoint", registry=r
        )
        self.freed = Counter(
            "ccms_chunks_freed", "Chunks released by retention, memory cap and /api/free", registry=r
        )
        self.journal_fsyncs = Gauge(
            "ccms_journal_fsyncs", "fsync calls made by the write journal", registry=r
        )
        self.journal_records = Gauge(
            "ccms_journal_records", "Records appended to the write journal", registry=r
        )
