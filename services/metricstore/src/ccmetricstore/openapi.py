"""OpenAPI 3 description of the cc-metric-store HTTP API (served under /swagger/ with -dev)."""

from __future__ import annotations

from typing import Any


def _err(desc: str) -> dict[str, Any]:
    return {
        "description": desc,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi_spec(version: str) -> dict[str, Any]:
    series = {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "data": {"type": "array", "items": {"type": "number", "nullable": True}},
            "from": {"type": "integer"},
            "to": {"type": "integer"},
            "resolution": {"type": "integer"},
            "avg": {"type": "number", "nullable": True},
            "min": {"type": "number", "nullable": True},
            "max": {"type": "number", "nullable": True},
        },
    }
    query = {
        "type": "object",
        "properties": {
            "metric": {"type": "string"},
            "host": {"type": "string"},
            "type": {"type": "string", "nullable": True},
            "type-ids": {"type": "array", "items": {"type": "string"}},
            "subtype": {"type": "string", "nullable": True},
            "subtype-ids": {"type": "array", "items": {"type": "string"}},
            "aggreg": {"type": "boolean"},
            "resolution": {"type": "integer"},
            "scale-by": {"type": "number"},
        },
    }
    query_request = {
        "type": "object",
        "properties": {
            "cluster": {"type": "string"},
            "from": {"type": "integer"},
            "to": {"type": "integer"},
            "queries": {"type": "array", "items": {"$ref": "#/components/schemas/Query"}, "nullable": True},
            "for-all-nodes": {"type": "array", "items": {"type": "string"}, "nullable": True},
            "with-stats": {"type": "boolean", "default": True},
            "with-data": {"type": "boolean", "default": True},
            "with-padding": {"type": "boolean", "default": True},
        },
    }
    query_op = {
        "summary": "Query series (JSON body; GET as cc-backend sends it, POST as older clients do)",
        "parameters": [
            {
                "name": "cluster",
                "in": "query",
                "schema": {"type": "string"},
                "description": "URL form without body",
            },
            {"name": "from", "in": "query", "schema": {"type": "integer"}},
            {"name": "to", "in": "query", "schema": {"type": "integer"}},
            {"name": "host", "in": "query", "schema": {"type": "string"}},
            {"name": "metric", "in": "query", "schema": {"type": "string"}},
        ],
        "requestBody": {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/QueryRequest"}}}
        },
        "responses": {
            "200": {
                "description": "One row per query, one entry per matched selector",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/QueryResponse"}}},
            },
            "400": _err("Body is not JSON or has wrong types"),
            "401": _err("Missing or invalid token"),
        },
    }
    health_op = {
        "summary": "Health of nodes: fresh, stale and missing metrics",
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "cluster": {"type": "string"},
                            "nodes": {"type": "array", "items": {"type": "string"}},
                            "metric-names": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                }
            }
        },
        "responses": {"200": {"description": "State per node"}, "400": _err("Bad body or unknown key")},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "cc-metric-store API (ClusterCockpit in Python)",
            "version": version,
            "description": "In-memory time-series store for job-specific metrics. All /api routes "
            "require an Ed25519 JWT (Authorization: Bearer) when a public key is configured.",
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"status": {"type": "string"}, "error": {"type": "string"}},
                },
                "Query": query,
                "QueryRequest": query_request,
                "Series": series,
                "QueryResponse": {
                    "type": "object",
                    "properties": {
                        "results": {
                            "type": "array",
                            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Series"}},
                        },
                        "queries": {"type": "array", "items": {"$ref": "#/components/schemas/Query"}},
                    },
                },
            },
        },
        "security": [{"bearerAuth": []}],
        "paths": {
            "/api/write": {
                "post": {
                    "summary": "Write samples in InfluxDB line protocol (ClusterCockpit dialect)",
                    "parameters": [
                        {
                            "name": "cluster",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "Cluster of lines without a cluster tag",
                        }
                    ],
                    "requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}},
                    "responses": {
                        "200": {"description": "Stored (and on disk when the journal is enabled)"},
                        "400": _err("Some lines are malformed; they are named, the others were stored"),
                        "401": _err("Missing or invalid token"),
                        "413": _err("Body larger than main.max-body-size"),
                    },
                }
            },
            "/api/query": {"get": query_op, "post": query_op},
            "/api/free": {
                "post": {
                    "summary": "Free buffers older than `to` below the given selectors",
                    "parameters": [
                        {"name": "to", "in": "query", "required": True, "schema": {"type": "integer"}}
                    ],
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "items": {"type": "array", "items": {"type": "string"}},
                                }
                            }
                        }
                    },
                    "responses": {
                        "200": {"description": "buffers freed: N"},
                        "400": _err("Bad `to` or body"),
                    },
                }
            },
            "/api/debug": {
                "get": {
                    "summary": "Chunk layout of the tree (JSON)",
                    "parameters": [{"name": "selector", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "Tree"}, "400": _err("Selector not found")},
                }
            },
            "/api/healthcheck": {"get": health_op, "post": health_op},
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of the store",
                    "security": [],
                    "responses": {"200": {"description": "text"}},
                }
            },
        },
    }
