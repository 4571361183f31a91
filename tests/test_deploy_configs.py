"""The shipped deployment and cluster configurations are valid for the code they drive."""

import inspect
import sys

import yaml
from conftest import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "deploy" / "dask"))


def test_prefect_yaml_deployments_match_the_flows():
    import importlib

    from screening.datasets import data_path

    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "prefect.yaml").read_text())
    names = set()
    for deployment in config["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        module = importlib.import_module(path[:-3].replace("/", "."))
        flow = getattr(module, name)
        names.add(f"{flow.name}/{deployment['name']}")
        signature = inspect.signature(flow.fn)
        assert set(deployment["parameters"]) <= set(signature.parameters), deployment["name"]
        flow.validate_parameters(deployment["parameters"])  # types and bounds, as the server will
        assert deployment["work_pool"]["name"] == "screening-pool"
        for schedule in deployment.get("schedules", []):
            assert len(schedule["cron"].split()) == 5
        for trigger in deployment.get("triggers", []):  # as `prefect deploy` will read them
            from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

            DeploymentEventTrigger(**{k: v for k, v in trigger.items() if k != "type"})
        if "file" in deployment["parameters"]:  # a campaign: the file exists and is valid
            from screening.campaign import load_campaign

            load_campaign(PROJECT_ROOT / deployment["parameters"]["file"])
        for key in ("model", "train", "val", "aux", "reference"):
            paths = deployment["parameters"].get(key, [])
            for path in [paths] if isinstance(paths, str) else paths:
                # reference data comes from the installation's setting, never from this checkout's layout
                assert key == "model" or path.startswith("{data}/"), path
                assert (PROJECT_ROOT / data_path(path)).exists(), path
    assert names == {
        "screen-candidates/default",
        "screen-candidates/nightly",
        "train-models/weekly",
        "campaign/nightly",
        "campaign/rescore",
    }


def test_slurm_job_script():
    from slurm import make_cluster

    cluster = make_cluster(0)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH --cpus-per-task=32" in script and "--nworkers 32" in script and "--nthreads 1" in script
    assert 'export DASK_CONFIG="$HOME/screening/deploy/dask"' in script


def test_kubernetes_cluster_and_worker_environment():
    spec = yaml.safe_load((PROJECT_ROOT / "deploy" / "dask" / "kubernetes.yaml").read_text())
    assert spec["kind"] == "DaskCluster" and spec["spec"]["worker"]["replicas"] >= 1
    worker = spec["spec"]["worker"]["spec"]["containers"][0]
    assert "--nthreads" in worker["args"] and worker["resources"]["limits"]["cpu"] == "2"
    environ = yaml.safe_load((PROJECT_ROOT / "deploy" / "dask" / "distributed.yaml").read_text())
    assert environ["distributed"]["nanny"]["pre-spawn-environ"]["MALLOC_TRIM_THRESHOLD_"] == 256 << 20


def test_data_paths_follow_the_installation_setting(monkeypatch, tmp_path):
    from screening.datasets import DATA_DIR_ENV, data_path

    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert data_path("{data}/mp_e_form/train.csv") == f"{tmp_path}/mp_e_form/train.csv"
    assert data_path("runs/{data}.csv") == "runs/{data}.csv" and data_path("x.csv") == "x.csv"


def test_the_elemnet_scale_campaign_is_every_ternary_and_quaternary_of_the_40_most_common_elements(data_dir):
    from collections import Counter

    from screening.campaign import load_campaign, plan_campaign
    from screening.composition import parse_formulas
    from screening.datasets import load_reference
    from screening.elements import SYMBOLS

    formulas = [f for split in ("train", "val") for f in load_reference("mp_e_form", split)["formula"]]
    compounds = Counter(SYMBOLS[z - 1] for zs in parse_formulas(formulas)[0].z for z in set(zs[zs > 0].tolist()))
    campaign = load_campaign(PROJECT_ROOT / "deploy" / "campaigns" / "elemnet-scale.yaml")
    assert [(s.min_arity, s.max_arity) for s in campaign.spaces] == [(3, 3), (4, 4)]
    for space in campaign.spaces:
        assert list(space.elements) == [e for e, _ in compounds.most_common(40)]
    assert [r["candidates"] for r in plan_campaign(campaign)] == [40 * 39 * 38 // 6 * 109, 91390 * 205]
