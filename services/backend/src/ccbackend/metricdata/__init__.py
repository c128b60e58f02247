"""Metric data from cc-metric-store: configuration, the HTTP client, scope planning and the dispatcher."""

from .ccms import ApiQuery, ApiSeries, CCMetricStoreClient, MetricDataError, QueryResult
from .config import MetricDataRepository, MetricStoreExternal, parse_stores, stores_from_legacy
from .loader import MetricDataDispatcher, job_time_range

__all__ = [
    "ApiQuery",
    "ApiSeries",
    "CCMetricStoreClient",
    "MetricDataDispatcher",
    "MetricDataError",
    "MetricDataRepository",
    "MetricStoreExternal",
    "QueryResult",
    "job_time_range",
    "parse_stores",
    "stores_from_legacy",
]
