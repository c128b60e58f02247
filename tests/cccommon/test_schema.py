"""cccommon.schema: upstream cluster.json / meta.json / data.json load, round-trip and fail with ConfigError."""

from __future__ import annotations

import copy
import gzip
import json
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from cccommon.config import ConfigError
from cccommon.schema import (
    Cluster,
    JobData,
    JobMeta,
    JobState,
    MetricConfig,
    SubCluster,
    check_cluster,
    dump,
    dumps,
    load_cluster,
    load_job_data,
    load_job_meta,
)
from tests.conftest import DATA, SHARED, UPSTREAM

OWN = DATA / "schema"
ARCHIVE = UPSTREAM / "cc-backend" / "pkg" / "archive" / "testdata" / "archive"
IMPORTER = UPSTREAM / "cc-backend" / "internal" / "importer" / "testdata"
GUIDE = SHARED / "seed" / "clustercockpit-howto-guides.txt"


def _upstream(pattern: str, extra: list[str] | None = None) -> list[Path]:
    files = sorted(ARCHIVE.glob(pattern)) if ARCHIVE.exists() else []
    for name in extra or []:
        if (IMPORTER / name).exists():
            files.append(IMPORTER / name)
    return files


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(UPSTREAM)) for p in paths]


def _skip_if_none(paths: list[Path]) -> list[Any]:
    if paths:
        return paths
    return [
        pytest.param(None, marks=pytest.mark.skip(reason=f"upstream fixtures not available under {UPSTREAM}"))
    ]


CLUSTERS = _upstream("*/cluster.json", ["cluster-fritz.json"])
METAS = _upstream("*/*/*/*/meta.json", ["meta-fritzMinimal.input", "meta-fritzError.input"])
DATAS = _upstream("*/*/*/*/data.json*", ["data-fritzMinimal.json", "data-fritzError.json"])


def _raw(path: Path) -> Any:
    raw = path.read_bytes()
    return orjson.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)


def _roundtrip(obj: Any, loader: Any, tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    dump(obj, out)
    again = loader(out)
    assert again == obj
    assert dumps(again) == dumps(obj)


# --- upstream fixtures -------------------------------------------------------------------------


@pytest.mark.parametrize("path", _skip_if_none(CLUSTERS), ids=_ids(CLUSTERS) or None)
def test_upstream_cluster_loads_and_round_trips(path: Path, tmp_path: Path) -> None:
    cluster = load_cluster(path)
    assert cluster.name
    assert cluster.metric_config and cluster.sub_clusters
    # dumping reproduces the file's data exactly (camelCase keys, nothing added)
    assert orjson.loads(dumps(cluster)) == _raw(path)
    _roundtrip(cluster, load_cluster, tmp_path, "cluster.json")


@pytest.mark.parametrize("path", _skip_if_none(METAS), ids=_ids(METAS) or None)
def test_upstream_meta_loads_and_round_trips(path: Path, tmp_path: Path) -> None:
    meta = load_job_meta(path)
    assert isinstance(meta.job_state, JobState)
    assert meta.resources[0].hostname
    assert orjson.loads(dumps(meta)) == _raw(path)
    _roundtrip(meta, load_job_meta, tmp_path, "meta.json")


@pytest.mark.parametrize("path", _skip_if_none(DATAS), ids=_ids(DATAS) or None)
def test_upstream_data_loads_and_round_trips(path: Path, tmp_path: Path) -> None:
    data = load_job_data(path)
    assert data.metrics()
    assert orjson.loads(dumps(data)) == _raw(path)
    _roundtrip(data, load_job_data, tmp_path, "data.json.gz" if path.name.endswith(".gz") else "data.json")


def test_upstream_inconsistent_cluster_warns_not_fails(caplog: pytest.LogCaptureFixture) -> None:
    path = ARCHIVE / "emmy" / "cluster.json"
    if not path.exists():
        pytest.skip(f"upstream fixture {path} not available")
    with caplog.at_level(logging.WARNING, logger="cccommon.schema"):
        load_cluster(path)
    assert any("threadsPerCore" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError) as ei:
        load_cluster(path, strict=True)
    assert ei.value.field and ei.value.field.startswith("subClusters[")


# --- how-to guide examples (spec/decisions.md: load verbatim, inconsistencies are warnings) ---------


def _guide_object(text: str, start: str, after: str = "") -> dict[str, Any]:
    pos = text.index(start, text.index(after) if after else 0)
    obj, _ = json.JSONDecoder().raw_decode(text, pos)
    return obj


def test_guide_cluster_examples_load_verbatim(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if not GUIDE.exists():
        pytest.skip(f"how-to guide {GUIDE} not available")
    text = GUIDE.read_text()
    flops_sp = _guide_object(text, '{\n"name": "flops_sp"')
    mem_used = _guide_object(text, '{\n"name": "mem_used"', after="Example for a metric overwrite")
    vect = _guide_object(text, '{\n"name": "vectorization_ratio"')
    icelake = _guide_object(text, '{\n"name": "icelake"', after="Here is an example:")
    for m in (flops_sp, mem_used, vect):
        assert MetricConfig.model_validate(m).name == m["name"]
    assert SubCluster.model_validate(icelake).topology.die == []
    assert MetricConfig.model_validate(flops_sp).unit.base == "Flops/s"  # not in the schema's enum

    doc = {"name": "fritz", "metricConfig": [flops_sp, mem_used, vect], "subClusters": [icelake]}
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING, logger="cccommon.schema"):
        cluster = load_cluster(path)
    msgs = [r.getMessage() for r in caplog.records]
    assert any("but topology.node lists 72 hwthreads" in m for m in msgs)  # 2*16*1 != 72
    assert any("unknown subcluster 'spr1tb'" in m for m in msgs)
    assert orjson.loads(dumps(cluster)) == doc
    with pytest.raises(ConfigError):
        load_cluster(path, strict=True)


# --- own fixtures (run on a fresh clone) -----------------------------------------------------------


def test_own_cluster(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cccommon.schema"):
        cluster = load_cluster(OWN / "cluster.json", strict=True)
    assert not caplog.records
    assert check_cluster(cluster) == []
    mem = cluster.metric("mem_used")
    assert mem is not None and mem.lower_is_better is True and mem.footprint == "max"
    assert mem.sub_clusters and mem.sub_clusters[1].remove is True
    small = cluster.sub_cluster("small")
    assert small is not None and small.topology.memory_domain[1] == [2, 6, 3, 7]
    big = cluster.sub_cluster("big")
    assert big is not None and big.topology.accelerators and big.topology.accelerators[0].model == "A40"
    assert cluster.metric_config[0].unit.prefix is None
    out = orjson.loads(dumps(cluster))
    assert out == _raw(OWN / "cluster.json")
    assert "prefix" not in out["metricConfig"][0]["unit"]  # absent fields stay absent
    _roundtrip(cluster, load_cluster, tmp_path, "cluster.json")


def test_own_meta(tmp_path: Path) -> None:
    meta = load_job_meta(OWN / "meta.json")
    assert meta.job_id == 4711 and meta.sub_cluster == "small" and meta.job_state is JobState.COMPLETED
    assert meta.resources[0].hwthreads == list(range(8))
    assert meta.statistics["mem_used"].unit.prefix == "G"
    assert meta.statistics["mem_used"].avg == 12.25
    assert meta.tags and meta.tags[0].name == "a.out"
    assert meta.model_extra == {"siteSpecific": {"kept": True}}
    out = orjson.loads(dumps(meta))
    assert out == _raw(OWN / "meta.json")
    assert "stopTime" not in out and "jobId" in out and "job_id" not in out
    _roundtrip(meta, load_job_meta, tmp_path, "meta.json")


def test_own_data(tmp_path: Path) -> None:
    data = load_job_data(OWN / "data.json")
    assert "cpu_load" in data and len(data) == 2
    node = data["cpu_load"]["node"]
    assert node.timestep == 60 and node.series[0].data == [6, 7, None, 8]
    sock = data["flops_any"]["socket"]
    assert sock.series[1].id == "1"
    assert sock.statistics_series and sock.statistics_series.percentiles == {"50": [2, 2, 2]}
    assert orjson.loads(dumps(data)) == _raw(OWN / "data.json")
    _roundtrip(data, load_job_data, tmp_path, "data.json")
    _roundtrip(data, load_job_data, tmp_path, "data.json.gz")


def test_models_accept_field_names_and_dump_aliases() -> None:
    meta = JobMeta.model_validate(_raw(OWN / "meta.json"))
    again = JobMeta(**meta.model_dump())  # snake_case names work too
    assert again == meta
    assert orjson.loads(dumps(again)).keys() >= {"jobId", "subCluster", "numNodes", "startTime"}
    assert Cluster.model_validate(_raw(OWN / "cluster.json")).name == "testcl"
    assert JobData.model_validate(_raw(OWN / "data.json")).metrics() == ["cpu_load", "flops_any"]


# --- bad input ------------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, doc: Any) -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def _mutated(name: str, edit: Any) -> Any:
    doc = copy.deepcopy(_raw(OWN / name))
    edit(doc)
    return doc


@pytest.mark.parametrize(
    ("name", "edit", "field", "words"),
    [
        ("meta.json", lambda d: d.pop("jobId"), "jobId", "required"),
        ("meta.json", lambda d: d.update(numNodes="many"), "numNodes", "integer"),
        ("meta.json", lambda d: d.update(jobState="exploded"), "jobState", "exploded"),
        ("meta.json", lambda d: d.update(numNodes=0), "numNodes", "greater than 0"),
        ("meta.json", lambda d: d["resources"][1].pop("hostname"), "resources[1].hostname", "required"),
        (
            "meta.json",
            lambda d: d["statistics"]["mem_used"].update(avg="x"),
            "statistics.mem_used.avg",
            "number",
        ),
        ("cluster.json", lambda d: d.pop("subClusters"), "subClusters", "required"),
        ("cluster.json", lambda d: d["metricConfig"][1].pop("peak"), "metricConfig[1].peak", "required"),
        ("cluster.json", lambda d: d["metricConfig"][0].update(unit="GB"), "metricConfig[0].unit", "GB"),
        (
            "cluster.json",
            lambda d: d["metricConfig"][0].update(aggregation="max"),
            "metricConfig[0].aggregation",
            "",
        ),
        (
            "cluster.json",
            lambda d: d["subClusters"][0].update(socketsPerNode=[2]),
            "subClusters[0].socketsPerNode",
            "",
        ),
        (
            "cluster.json",
            lambda d: d["subClusters"][1]["topology"].pop("memoryDomain"),
            "subClusters[1].topology.memoryDomain",
            "required",
        ),
        ("cluster.json", lambda d: d.update(metricConfig=[]), "metricConfig", "at least 1"),
        ("data.json", lambda d: d["cpu_load"]["node"].pop("timestep"), "cpu_load.node.timestep", "required"),
        (
            "data.json",
            lambda d: d["cpu_load"]["node"]["series"][0]["data"].append("x"),
            "cpu_load.node.series[0].data[4]",
            "",
        ),
        ("data.json", lambda d: d["cpu_load"].update(node=[]), "cpu_load.node", ""),
    ],
)
def test_bad_input_names_field(tmp_path: Path, name: str, edit: Any, field: str, words: str) -> None:
    path = _write(tmp_path, name, _mutated(name, edit))
    loader = {"meta.json": load_job_meta, "cluster.json": load_cluster, "data.json": load_job_data}[name]
    with pytest.raises(ConfigError) as ei:
        loader(path)
    err = ei.value
    assert err.file == str(path)
    assert err.field == field
    assert words in str(err)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_job_meta(tmp_path / "missing.json")
    bad = tmp_path / "meta.json"
    bad.write_text('{"jobId": 1,\n  "user": }')
    with pytest.raises(ConfigError) as ei:
        load_job_meta(bad)
    assert ei.value.line == 2
    gz = tmp_path / "data.json.gz"
    gz.write_bytes(b"not gzip")
    with pytest.raises(ConfigError, match="gzip"):
        load_job_data(gz)
    with pytest.raises(ConfigError, match="file not found"):
        load_job_data(tmp_path / "nope.json.gz")
