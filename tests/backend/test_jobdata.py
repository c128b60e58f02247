"""Archived job data: metric/scope filtering and LTTB resampling (ccbackend.jobdata.from_archive)."""

from __future__ import annotations

import math

from ccbackend.jobdata import from_archive


def _metric(n: int, timestep: int = 60) -> dict:
    data = [float(i % 7) for i in range(n)]
    data[3] = None
    return {"unit": {"base": ""}, "timestep": timestep, "series": [{"hostname": "h1", "data": data}]}


def test_filters_metrics_and_scopes():
    data = {"cpu_load": {"node": _metric(10), "core": _metric(10)}, "mem_used": {"socket": _metric(10)}}
    out = from_archive(data, ["cpu_load", "mem_used"], ["node"])
    assert set(out["cpu_load"]) == {"node"}
    assert set(out["mem_used"]) == {"socket"}  # only stored at one scope: kept
    assert set(from_archive(data, None, None)) == {"cpu_load", "mem_used"}
    assert set(from_archive(data, ["cpu_load"], ["core"])) == {"cpu_load"}


def test_resamples_to_a_coarser_resolution_with_nulls_as_nan():
    data = {"cpu_load": {"node": _metric(2000)}}
    out = from_archive(data, None, ["node"], resolution=240, min_points=1000)
    m = out["cpu_load"]["node"]
    assert m["timestep"] == 240 and len(m["series"][0]["data"]) == 2000 // 4
    kept = from_archive(data, None, ["node"], resolution=60)["cpu_load"]["node"]
    assert kept["timestep"] == 60 and kept["series"][0]["data"][3] is None
    short = from_archive({"x": {"node": _metric(100)}}, None, ["node"], resolution=240, min_points=1000)
    assert len(short["x"]["node"]["series"][0]["data"]) == 100  # below minimum-points: untouched
    assert not any(isinstance(v, float) and math.isinf(v) for v in m["series"][0]["data"])
