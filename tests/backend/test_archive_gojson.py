"""Tests of the Go-JSON writers of meta.json and data.json (ccbackend.archive.gojson)."""

from __future__ import annotations

import gzip
import math
import re
from pathlib import Path

import numpy as np
import orjson
import pytest

from ccbackend.archive.gojson import (
    dumps_data,
    dumps_job_metric,
    dumps_meta,
    format_samples,
    go_float,
    go_string,
)
from ccbackend.model import Job
from cccommon.schema import JobData, JobMeta
from tests.conftest import upstream_fixture

EMMY = "cc-backend/pkg/archive/testdata/archive/emmy"
EMMY_JOBS = ["1403/244/1608923076", "1404/397/1609300556"]
IMPORTER = "cc-backend/internal/importer/testdata"

GO_META_ORDER = [
    "cluster", "subCluster", "partition", "project", "user", "shared", "jobState", "tags", "resources",
    "energyFootprint", "footprint", "metaData", "concurrentJobs", "energy", "arrayJobId", "walltime",
    "requestedMemory", "jobId", "duration", "smt", "monitoringStatus", "numAcc", "numHwthreads", "numNodes",
    "statistics", "id", "submitTime", "startTime",
]  # fmt: skip


# ---------------------------------------------------------------- scalars


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (6.1, "6.1"),
        (0.510204081632653, "0.510204081632653"),
        (123456789.0, "123456789"),
        (1e16, "10000000000000000"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e-7, "1.5e-7"),
        (1e-6, "0.000001"),
        (2.5e-5, "0.000025"),
        (1e-100, "1e-100"),
        (float("nan"), "null"),
        (float("inf"), "null"),
        (None, "null"),
    ],
)
def test_go_float(value: float, expected: str) -> None:
    assert go_float(value) == expected


def test_go_string() -> None:
    assert go_string("plain") == '"plain"'
    assert go_string('a<b>&c"d\\e') == '"a\\u003cb\\u003e\\u0026c\\"d\\\\e"'
    assert go_string("line\nnext\ttab\x01\x1f") == '"line\\nnext\\ttab\\u0001\\u001f"'
    assert go_string("é ü 日本 \u2028") == '"é ü 日本 \\u2028"'  # non-ASCII raw, U+2028 escaped


def test_format_samples_float32_and_nulls() -> None:
    assert format_samples([1, None, 2.5, float("nan"), float("inf"), -0.001]) == "1.00,null,2.50,null,null,-0.00"
    # float32 first: 123456789.12 is 123456792 in single precision
    assert format_samples([123456789.12]) == "123456792.00"
    assert format_samples([123456789.12], single=False) == "123456789.12"
    # 2.675 is below the tie in binary; 0.125 / 0.375 are exact ties, rounded to even like Go's strconv
    assert format_samples([2.675, 0.125, 0.375, 1e39]) == "2.67,0.12,0.38,null"
    arr = np.array([1.0, np.nan, 3.14159], dtype=np.float64)
    assert format_samples(arr) == format_samples([1.0, None, 3.14159]) == "1.00,null,3.14"
    assert format_samples(np.array([0.1], dtype=np.float32)) == "0.10"
    assert format_samples([]) == ""


# ---------------------------------------------------------------- meta.json

MINIMAL = {
    "jobId": 398955,
    "user": "k106eb10",
    "project": "k106eb",
    "cluster": "fritz",
    "subCluster": "main",
    "partition": "singlenode",
    "numNodes": 1,
    "numHwthreads": 72,
    "shared": "none",
    "monitoringStatus": 1,
    "jobState": "completed",
    "startTime": 1675956725,
    "duration": 260,
    "walltime": 86340,
    "resources": [{"hostname": "f0720"}],
    "metaData": {"jobScript": "#!/bin/bash <&>", "jobName": "ams_pipeline"},
    "statistics": {
        "mem_used": {"unit": {"base": "B", "prefix": "G"}, "avg": 6.16, "min": 6.1, "max": 6.23},
        "cpu_load": {"unit": {"base": ""}, "avg": 31.64, "min": 17.36, "max": 45.54},
    },
    "id": 4711,
    "stopTime": 1675956985,  # legacy key: dropped
    "exclusive": 1,  # legacy key: dropped (shared is set)
}

MINIMAL_GO = (
    '{"cluster":"fritz","subCluster":"main","partition":"singlenode","project":"k106eb",'
    '"user":"k106eb10","shared":"none","jobState":"completed",'
    '"resources":[{"hostname":"f0720"}],"energyFootprint":null,"footprint":null,'
    '"metaData":{"jobName":"ams_pipeline","jobScript":"#!/bin/bash \\u003c\\u0026\\u003e"},'
    '"concurrentJobs":{"items":null,"count":0},"energy":0,"walltime":86340,"jobId":398955,'
    '"duration":260,"monitoringStatus":1,"numHwthreads":72,"numNodes":1,'
    '"statistics":{"cpu_load":{"unit":{"base":""},"avg":31.64,"min":17.36,"max":45.54},'
    '"mem_used":{"unit":{"base":"B","prefix":"G"},"avg":6.16,"min":6.1,"max":6.23}},'
    '"id":4711,"startTime":1675956725}\n'
)


def test_dumps_meta_hand_written() -> None:
    assert dumps_meta(MINIMAL).decode() == MINIMAL_GO
    assert dumps_meta(MINIMAL, newline=False).decode() == MINIMAL_GO[:-1]


def test_dumps_meta_models_agree() -> None:
    as_meta = JobMeta.model_validate(MINIMAL)
    as_job = Job.from_meta(MINIMAL)
    assert dumps_meta(as_meta).decode() == MINIMAL_GO
    assert dumps_meta(as_job).decode() == MINIMAL_GO


def test_dumps_meta_omitempty_and_full() -> None:
    full = dict(MINIMAL)
    full.update(
        tags=[{"type": "app", "name": "vasp", "scope": "global", "id": 3}, {"type": "t", "name": "n"}],
        resources=[
            {"hostname": "a", "hwthreads": [0, 1], "accelerators": ["00:01"], "configuration": "cfg"},
            {"hostname": "b", "hwthreads": []},
        ],
        footprint={"mem_used_max": 6.23, "cpu_load_avg": 31.64},
        energyFootprint={"cpu_power": 1.5e-7},
        concurrentJobs={"items": [{"id": 1, "jobId": 2}], "count": 1},
        energy=1.25,
        arrayJobId=7,
        requestedMemory=1000,
        smt=2,
        numAcc=4,
        submitTime=1675956700,
    )
    out = orjson.loads(dumps_meta(full))
    assert list(out) == GO_META_ORDER
    assert out["tags"] == [
        {"type": "app", "name": "vasp", "scope": "global", "id": 3},
        {"type": "t", "name": "n", "scope": "", "id": 0},
    ]
    raw = dumps_meta(full).decode()
    assert '"resources":[{"hostname":"a","configuration":"cfg","hwthreads":[0,1],"accelerators":["00:01"]},' in raw
    assert '{"hostname":"b"}]' in raw
    assert '"footprint":{"cpu_load_avg":31.64,"mem_used_max":6.23}' in raw  # map keys sorted
    assert '"energyFootprint":{"cpu_power":1.5e-7}' in raw
    # zero omitempty values are dropped, non-omitempty zero values stay
    sparse = {"cluster": "c", "jobId": 1, "startTime": 2, "partition": "", "smt": 0, "tags": []}
    assert orjson.loads(dumps_meta(sparse)) == {
        "cluster": "c", "subCluster": "", "project": "", "user": "", "shared": "", "jobState": "",
        "resources": None, "energyFootprint": None, "footprint": None, "metaData": None,
        "concurrentJobs": {"items": None, "count": 0}, "energy": 0, "jobId": 1, "duration": 0,
        "numNodes": 0, "statistics": None, "startTime": 2,
    }  # fmt: skip
    # id is a pointer upstream: 0 is written, absent/None is not
    assert '"id":0' in dumps_meta({**sparse, "id": 0}).decode()
    assert '"id"' not in dumps_meta({**sparse, "id": None}).decode()


def test_dumps_meta_legacy_exclusive() -> None:
    for excl, shared in ((0, "multi_user"), (1, "none"), (2, "single_user")):
        legacy = {k: v for k, v in MINIMAL.items() if k != "shared"} | {"exclusive": excl}
        assert orjson.loads(dumps_meta(legacy))["shared"] == shared


def test_dumps_meta_bad_input() -> None:
    with pytest.raises(ValueError, match="'jobId'"):
        dumps_meta({**MINIMAL, "jobId": "x"})
    with pytest.raises(TypeError):
        dumps_meta([1, 2])  # type: ignore[arg-type]


# ---------------------------------------------------------------- data.json

DATA = {
    "mem_bw": {
        "socket": {
            "unit": {"base": "B/s", "prefix": "G"},
            "timestep": 30,
            "series": [
                {"hostname": "n<1>", "id": "0", "statistics": {"min": 1, "avg": 1.5, "max": 2}, "data": [1, 2]},
            ],
            "statisticsSeries": {
                "min": [1, None],
                "max": [2.005, 3],
                "median": [1.5, 2.5],
                "percentiles": {"90": [2, 3], "10": [1, 1]},
            },
        },
    },
    "cpu_load": {
        "node": {
            "unit": {"base": ""},
            "timestep": 60,
            "series": [{"hostname": "n1", "statistics": {"min": 0.004, "avg": 0.6, "max": 1.9}, "data": [0.6, None]}],
            "thresholds": {"peak": 4},
        },
        "core": {
            "unit": {"base": ""},
            "timestep": 60,
            "series": [{"hostname": "n1", "id": "3", "data": [123456789.12]}],
        },
    },
}

DATA_GO = (
    '{"cpu_load":{'
    '"core":{"unit":{"base":""},"series":[{"hostname":"n1","id":"3",'
    '"statistics":{"min":0.00,"avg":0.00,"max":0.00},"data":[123456792.00]}],"timestep":60},'
    '"node":{"unit":{"base":""},"series":[{"hostname":"n1",'
    '"statistics":{"min":0.00,"avg":0.60,"max":1.90},"data":[0.60,null]}],"timestep":60}},'
    '"mem_bw":{"socket":{"statisticsSeries":{"percentiles":{"10":[1.00,1.00],"90":[2.00,3.00]},'
    '"mean":null,"median":[1.50,2.50],"min":[1.00,null],"max":[2.00,3.00]},'
    '"unit":{"base":"B/s","prefix":"G"},"series":[{"hostname":"n\\u003c1\\u003e","id":"0",'
    '"statistics":{"min":1.00,"avg":1.50,"max":2.00},"data":[1.00,2.00]}],"timestep":30}}}\n'
)


def test_dumps_data_hand_written() -> None:
    assert dumps_data(DATA).decode() == DATA_GO


def test_dumps_data_model_and_numpy_agree() -> None:
    model = JobData.model_validate(DATA)
    assert dumps_data(model).decode() == DATA_GO
    with_arrays = {
        m: {
            s: {**jm, "series": [{**se, "data": np.array(se["data"], dtype=np.float64)} for se in jm["series"]]}
            for s, jm in scopes.items()
        }
        for m, scopes in DATA.items()
    }
    assert dumps_data(with_arrays).decode() == DATA_GO


def test_dumps_data_empty() -> None:
    assert dumps_data({}) == b"{}\n"
    assert dumps_job_metric({"unit": {"base": "W"}, "timestep": 1, "series": []}) == (
        '{"unit":{"base":"W"},"series":[],"timestep":1}'
    )


# ---------------------------------------------------------------- upstream data

_NUM2 = re.compile(rb"-?\d+\.\d\d")


def _check_two_decimals(raw: bytes) -> None:
    """Every number inside data/statistics arrays and series statistics has exactly two decimals."""
    for arr in re.findall(rb'"(?:data|min|max|median|mean)":\[([^\]]*)\]', raw):
        for tok in arr.split(b","):
            assert tok == b"null" or _NUM2.fullmatch(tok), tok
    for stats in re.findall(rb'"statistics":\{([^}]*)\}', raw):
        for part in stats.split(b","):
            k, v = part.split(b":")
            assert k in (b'"min"', b'"avg"', b'"max"') and _NUM2.fullmatch(v), part


@pytest.mark.parametrize("job", EMMY_JOBS)
def test_upstream_emmy_data_reencoded(job: str) -> None:
    path = upstream_fixture(f"{EMMY}/{job}/data.json.gz")
    src = orjson.loads(gzip.decompress(path.read_bytes()))
    raw = dumps_data(src)
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    _check_two_decimals(raw)
    back = orjson.loads(raw)
    assert list(back) == sorted(src)
    for metric, scopes in src.items():
        assert list(back[metric]) == sorted(scopes)
        for scope, jm in scopes.items():
            out = back[metric][scope]
            assert list(out) == ["unit", "series", "timestep"]  # no statisticsSeries stored here
            assert out["unit"] == jm["unit"] and out["timestep"] == jm["timestep"]
            for s_in, s_out in zip(jm["series"], out["series"], strict=True):
                assert list(s_out) == ["hostname", "statistics", "data"]
                assert s_out["hostname"] == s_in["hostname"]
                st = s_in.get("statistics") or {"min": 0, "avg": 0, "max": 0}  # ipc has none: Go writes zeros
                assert s_out["statistics"] == {k: round(st[k], 2) for k in ("min", "avg", "max")}
                expect = [None if v is None else round(float(np.float32(v)), 2) for v in s_in["data"]]
                got = s_out["data"]
                assert len(got) == len(expect)
                for g, e in zip(got, expect, strict=True):
                    assert (g is None and e is None) or math.isclose(g, e, abs_tol=0.0051)
    # encoding what we wrote again changes nothing (stable archive rewrites)
    assert dumps_data(back) == raw
    assert dumps_data(JobData.model_validate(src)) == raw


@pytest.mark.parametrize("job", EMMY_JOBS)
def test_upstream_emmy_meta_reencoded(job: str) -> None:
    path = upstream_fixture(f"{EMMY}/{job}/meta.json")
    src = orjson.loads(path.read_bytes())
    raw = dumps_meta(src)
    assert raw.endswith(b"}\n") and raw.count(b"\n") == 1
    out = orjson.loads(raw)
    assert list(out) == [k for k in GO_META_ORDER if k in out]
    assert "stopTime" not in out  # legacy key, not part of Go's schema.Job
    for key in ("cluster", "subCluster", "project", "user", "shared", "jobState", "jobId", "startTime",
                "duration", "numNodes", "resources", "walltime"):  # fmt: skip
        assert out[key] == src[key], key
    assert out["statistics"] == {m: {"unit": s["unit"], "avg": s["avg"], "min": s["min"], "max": s["max"]}
                                 for m, s in src["statistics"].items()}  # fmt: skip
    assert list(out["statistics"]) == sorted(src["statistics"])
    assert list(out["statistics"]["ipc"]) == ["unit", "avg", "min", "max"]
    assert b'"min":0,' in raw  # shortest float form of 0.0
    if job == EMMY_JOBS[0]:
        assert b'"max":0.510204081632653' in raw
    assert dumps_meta(JobMeta.model_validate(src)) == raw
    assert dumps_meta(out) == raw


def test_upstream_importer_series_byte_identical() -> None:
    """Series written by upstream's serialiser (importer test data) come out byte for byte the same."""
    for name in ("data-fritzMinimal.json", "data-fritzError.json"):
        path: Path = upstream_fixture(f"{IMPORTER}/{name}")
        text = path.read_bytes()
        src = orjson.loads(text)
        count = 0
        for scopes in src.values():
            for jm in scopes.values():
                enc = dumps_job_metric(jm).encode()
                series = enc[enc.index(b'"series":') : enc.index(b',"timestep":')]
                assert series in text
                count += 1
        assert count > 10
        # whole file: only the JobMetric key order of that older writer differs
        legacy = re.sub(rb'"unit":(\{[^}]*\}),"timestep":(\d+),("series":\[.*?\]\}\])', rb'"unit":\1,\3,"timestep":\2',
                        text)  # fmt: skip
        assert dumps_data(src) == legacy
