"""Configuration of the metric stores the backend reads from (spec backend-data §5.7, §5.11).

Two spellings are accepted: the 1.5 `metric-store-external` array (`scope`, `url`, `token`) and the
1.4 per-cluster `metricDataRepository` object (`kind: cc-metric-store`, `url`, `token`), which
`stores_from_legacy` turns into the former with the cluster name as scope.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field, field_validator

from cccommon.config import CCModel, ConfigError, parse_config

__all__ = ["MetricDataRepository", "MetricStoreExternal", "parse_stores", "stores_from_legacy"]

log = logging.getLogger("ccbackend.metricdata")


class MetricStoreExternal(CCModel):
    """One external cc-metric-store: `scope` is `<cluster>-<subcluster>`, `<cluster>` or `*`."""

    scope: str = Field(min_length=1)
    url: str = Field(min_length=1)
    token: str

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {v!r}")
        return v.rstrip("/")


class MetricDataRepository(CCModel):
    """The cc-backend 1.4 per-cluster `metricDataRepository` (only `cc-metric-store` is supported)."""

    kind: str
    url: str = ""
    token: str = ""


def parse_stores(data: Any, *, file: str = "config.json") -> list[MetricStoreExternal]:
    """Validate a `metric-store-external` array; errors name the file and the offending entry."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError(file, "metric-store-external", "must be an array of {scope, url, token}")
    out = []
    for i, entry in enumerate(data):
        try:
            out.append(parse_config(entry, MetricStoreExternal, file=file, log=log))
        except ConfigError as e:
            field = f"metric-store-external[{i}]" + (f".{e.field}" if e.field else "")
            raise ConfigError(file, field, e.message) from None
    return out


def stores_from_legacy(clusters: Any, *, file: str = "config.json") -> list[MetricStoreExternal]:
    """Convert 1.4 `clusters[].metricDataRepository` entries into external store entries.

    Kinds other than `cc-metric-store` (prometheus, influxdb, test) are not supported: a ConfigError
    names the cluster.
    """
    if not isinstance(clusters, list):
        raise ConfigError(file, "clusters", "must be an array")
    out = []
    for i, c in enumerate(clusters):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
            raise ConfigError(file, f"clusters[{i}].name", "required, a non-empty string")
        raw = c.get("metricDataRepository")
        if raw is None:
            continue
        where = f"clusters[{i}].metricDataRepository"
        try:
            repo = parse_config(raw, MetricDataRepository, file=file, log=log)
        except ConfigError as e:
            raise ConfigError(file, where + (f".{e.field}" if e.field else ""), e.message) from None
        if repo.kind != "cc-metric-store":
            raise ConfigError(
                file, where + ".kind", f"kind {repo.kind!r} is not supported (only 'cc-metric-store')"
            )
        try:
            out.append(MetricStoreExternal(scope=c["name"], url=repo.url, token=repo.token))
        except ValueError as e:
            raise ConfigError(file, where + ".url", str(e).splitlines()[-1].strip()) from None
    return out
