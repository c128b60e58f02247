"""The cluster registry on the upstream archive's cluster.json files and on our own small ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccbackend.archive import FsArchive
from ccbackend.clusters import ClusterError, ClusterRegistry
from cccommon.schema import load_cluster
from tests.conftest import DATA, upstream_fixture

OWN = DATA / "backend" / "clusters"


@pytest.fixture(scope="module")
def upstream() -> ClusterRegistry:
    root = upstream_fixture("cc-backend/pkg/archive/testdata/archive")
    return ClusterRegistry.from_archive(FsArchive(root))


@pytest.fixture(scope="module")
def own() -> ClusterRegistry:
    return ClusterRegistry([load_cluster(OWN / "tiny.json"), load_cluster(OWN / "wild.json")])


def test_from_archive_loads_all_clusters(upstream: ClusterRegistry) -> None:
    assert upstream.names() == ["alex", "emmy", "fritz"]
    assert upstream.get("fritz").name == "fritz"
    with pytest.raises(ClusterError, match="unknown cluster 'nosuch'"):
        upstream.get("nosuch")
    with pytest.raises(ClusterError, match="unknown subcluster 'x' of cluster 'emmy'"):
        upstream.sub_cluster("emmy", "x")


def test_subcluster_assignment_upstream(upstream: ClusterRegistry) -> None:
    assert upstream.assign_sub_cluster("emmy", ["w1127", "w1128"]) == "haswell"
    assert upstream.assign_sub_cluster("emmy", ["w2335"]) == "icelake"
    assert upstream.assign_sub_cluster("emmy", ["w1146"]) is None  # gap in w11[27-45,49-63,69-72]
    assert upstream.assign_sub_cluster("emmy", ["e0101"]) is None
    assert upstream.assign_sub_cluster("alex", ["a0831"]) == "a100m80"
    assert upstream.assign_sub_cluster("alex", ["a0832"]) is None
    # only the first host counts
    assert upstream.assign_sub_cluster("alex", ["zzz", "a0831"]) is None
    # overlapping lists: file order decides
    assert upstream.assign_sub_cluster("fritz", ["f2181"]) == "spr1tb"
    assert upstream.assign_sub_cluster("fritz", ["f0720"]) == "main"
    assert upstream.sub_cluster_of_node("fritz", "f1256") == "main"


def test_overrides_replace_and_remove(upstream: ClusterRegistry) -> None:
    # emmy: cpu_user removed for haswell/skylake, present for icelake
    assert upstream.metric_config("emmy", "haswell", "cpu_user") is None
    assert upstream.metric_config("emmy", "icelake", "cpu_user") is not None
    haswell = [m.name for m in upstream.metric_configs("emmy", "haswell")]
    assert "nfs4_read" not in haswell and "cpu_load" in haswell
    assert len(upstream.metric_configs("emmy", "icelake")) == 13
    # replacement: icelake's mem_used thresholds; unit/scope/timestep stay
    ice = upstream.metric_config("emmy", "icelake", "mem_used")
    assert ice is not None
    assert (ice.peak, ice.normal, ice.caution, ice.alert) == (256, 128, 245, 255)
    assert ice.scope == "node" and ice.timestep == 60 and ice.unit.prefix == "G"
    plain = upstream.metric_config("emmy", "haswell", "mem_used")
    assert plain is not None and plain.peak != 256
    # fritz spr1tb: mem_used override replaces footprint and lowerIsBetter
    m = upstream.metric_config("fritz", "spr1tb", "mem_used")
    assert m is not None and m.peak == 1024 and m.lower_is_better is True and m.footprint == "max"
    # no partial merge: the override omits energy/restrict -> unset
    cl = upstream.metric_config("fritz", "spr1tb", "cpu_load")
    assert cl is not None and cl.energy is None and not cl.restrict
    assert upstream.metric_config("fritz", "spr2tb", "flops_any") is None
    assert upstream.metric_config("fritz", "spr1tb", "mem_bw") is None


def test_footprint_and_energy_metrics_upstream(upstream: ClusterRegistry) -> None:
    assert upstream.footprint_metrics("fritz", "main") == [
        ("cpu_load", "avg"),
        ("mem_used", "max"),
        ("flops_any", "avg"),
        ("mem_bw", "avg"),
    ]
    assert upstream.footprint_metrics("fritz", "spr2tb") == [("cpu_load", "avg"), ("mem_used", "max")]
    assert upstream.energy_metrics("fritz", "main") == [("cpu_power", "power"), ("mem_power", "power")]
    assert upstream.energy_metrics("alex", "a40") == [
        ("core_power", "power"),
        ("acc_power", "power"),
        ("cpu_power", "power"),
    ]
    assert upstream.footprint_metrics("emmy", "haswell") == []


def test_global_catalogue_footprint_is_last_seen(own: ClusterRegistry) -> None:
    # tiny says mem_used footprint "max"; wild (loaded later) says "min": the catalogue wins (§3.5)
    assert own.catalogue["mem_used"].footprint == "min"
    assert own.footprint_metrics("tiny", "cpu") == [
        ("cpu_load", "max"),
        ("mem_used", "min"),
        ("flops_any", "avg"),
        ("mem_bw", "avg"),
    ]
    assert own.catalogue["mem_used"].availability == {"tiny": ["cpu", "gpu"], "wild": ["any", "named"]}
    assert own.catalogue["mem_used"].restricted == {"tiny": ["gpu"]}
    assert own.is_restricted("tiny", "gpu", "mem_used") and not own.is_restricted("tiny", "cpu", "mem_used")
    # an override naming an unknown subcluster is ignored
    acc = own.metric_config("tiny", "gpu", "acc_utilization")
    assert acc is not None and acc.peak == 100
    assert own.metric_config("tiny", "cpu", "acc_utilization") is None
    assert own.energy_metrics("tiny", "cpu") == [("cpu_power", "power"), ("core_energy", "energy")]


def test_wildcard_subcluster_and_timesteps(own: ClusterRegistry) -> None:
    assert own.assign_sub_cluster("wild", ["x2"]) == "named"
    assert own.assign_sub_cluster("wild", ["anything"]) == "any"
    assert own.assign_sub_cluster("wild", []) == "any"
    assert own.assign_sub_cluster("tiny", ["x2"]) is None
    assert own.assign_sub_cluster("tiny", ["g2"]) == "gpu"
    assert own.min_timestep("tiny") == 10 and own.max_timestep("tiny") == 60
    assert own.native_timestep("wild", "cpu_load") == 30
    with pytest.raises(ClusterError, match="'nope' is not configured for cluster 'wild'"):
        own.native_timestep("wild", "nope")
    with pytest.raises(ClusterError):
        own.assign_sub_cluster("nosuch", ["a"])


def test_with_derived_lists(own: ClusterRegistry) -> None:
    c = own.with_derived("tiny")
    gpu = c.sub_cluster("gpu")
    assert gpu is not None
    dumped = gpu.model_dump(by_alias=True)
    assert dumped["footprint"] == ["cpu_load", "mem_used", "flops_any"]
    assert dumped["energyFootprint"] == ["cpu_power", "core_energy"]
    names = [m["name"] for m in dumped["metricConfig"]]
    assert "mem_bw" not in names and "acc_utilization" in names
    assert all(m["restrict"] is False for m in dumped["metricConfig"])
    # the original cluster is untouched
    assert "footprint" not in own.get("tiny").sub_cluster("gpu").model_dump(by_alias=True)


def test_bad_node_list_names_cluster_and_subcluster(tmp_path: Path) -> None:
    text = (OWN / "wild.json").read_text().replace('"x[1-3]"', '"x[1-30]"')
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(ClusterError, match=r"cluster 'wild', subcluster 'named': field 'nodes'.*x\[1-30\]"):
        ClusterRegistry([load_cluster(p)])


def test_importer_fixture_cluster() -> None:
    reg = ClusterRegistry([load_cluster(upstream_fixture("cc-backend/internal/importer/testdata/cluster-fritz.json"))])
    assert reg.assign_sub_cluster("fritz", ["f0649"]) == "main"
    assert reg.assign_sub_cluster("fritz", ["f0189"]) is None
    assert reg.footprint_metrics("fritz", "main") == [
        ("cpu_load", "avg"),
        ("mem_used", "max"),
        ("flops_any", "avg"),
        ("mem_bw", "avg"),
    ]
    assert reg.energy_metrics("fritz", "main") == []
