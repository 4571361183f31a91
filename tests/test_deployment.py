"""Against a real local Prefect server: the README's deployment recipe, literally (work pool,
`prefect deploy --all`, a worker, `prefect deployment run`), and a flow process killed mid-run
then run again."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from conftest import LONG_RUN, LONG_RUN_CANDIDATES, PROJECT_ROOT, assert_same_screening, catalog_rows

PREFECT = str(Path(sys.executable).with_name("prefect"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """``prefect server start`` on a free loopback port with its own PREFECT_HOME; yields the
    environment that points the CLI and flows at it."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = os.environ | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    log = open(home / "server.log", "w")
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{env['PREFECT_API_URL']}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"prefect server did not start: {(home / 'server.log').read_text()[-2000:]}")
        yield env
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def _run(command: list[str], env: dict, timeout: int = 300) -> str:
    done = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _start_worker(env: dict) -> subprocess.Popen:
    """``prefect worker start`` on the process pool, polling every 2 s, in a session of its own."""
    return subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", "screening-pool"],
        env=env | {"PREFECT_WORKER_QUERY_SECONDS": "2"},
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_deployment_run_through_a_work_pool(prefect_server, tmp_path):
    env = prefect_server
    _run([PREFECT, "work-pool", "create", "screening-pool", "--type", "process"], env)
    deployed = _run([PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", "deploy/prefect.yaml"], env)
    for name in ("screen-candidates/default", "screen-candidates/nightly", "train-models/weekly"):
        assert name in deployed
    worker = _start_worker(env)
    try:
        out = tmp_path / "run-{date}"
        _run(
            [
                PREFECT,
                "deployment",
                "run",
                "screen-candidates/default",
                "-p",
                'elements=["Li","Co","O"]',
                "-p",
                "max_arity=3",
                "-p",
                f"out={out}",
                "--watch",
            ],
            env,
        )
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    (run,) = tmp_path.glob("run-20*")  # {date} became the run's date
    summary = json.loads((run / "summary.json").read_text())
    assert (
        summary["candidates"] == 3 * 31 + 109
        and summary["scored"] + summary["removed"]["already known"] == summary["candidates"]
    )
    assert (run / "ranked.parquet").exists() and list(run.glob("hull_*.png"))
    request = urllib.request.Request(
        f"{env['PREFECT_API_URL']}/artifacts/filter", data=b"{}", headers={"Content-Type": "application/json"}
    )
    artifacts = {a["key"]: a for a in json.load(urllib.request.urlopen(request, timeout=10))}
    assert {"top-candidates", "screening-summary", "best-system-hull", "screening-progress", "likely-systems"} <= set(
        artifacts
    )
    assert artifacts["best-system-hull"]["data"].startswith("data:image/png;base64,")
    assert artifacts["screening-progress"]["data"] == 100.0
    schedules = _run([PREFECT, "deployment", "inspect", "screen-candidates/nightly"], env)
    assert "0 2 * * *" in schedules


def test_killed_flow_process_reruns_to_the_same_output(
    prefect_server, long_run_reference, single_machine_run, tmp_path
):
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "flows",
        "screen-candidates",
        *("-p", f"elements={json.dumps(LONG_RUN['elements'])}"),
        *("-p", f"max_arity={LONG_RUN['max_arity']}"),
        *("-p", f"max_atoms={LONG_RUN['max_atoms']}"),
        *("-p", f"chunk_size={LONG_RUN['chunk_size']}"),
        *("-p", "model=data/models/default"),
        *("-p", f"out={out}"),
        *("-p", f"reference={json.dumps(list(long_run_reference))}"),
    ]
    first = subprocess.Popen(
        command,
        env=prefect_server,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    n_chunks = -(-LONG_RUN_CANDIDATES // LONG_RUN["chunk_size"])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None:
        done = len(list((out / "scored").glob("part-*.parquet"))) if (out / "scored").exists() else 0
        if done >= 5:
            os.killpg(first.pid, signal.SIGKILL)  # the flow process and its Dask workers
            break
        time.sleep(0.02)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL and 5 <= done < n_chunks, (
        f"not killed mid-run ({done} of {n_chunks} chunks)"
    )
    assert not (out / "ranked.parquet").exists()

    _run(command, prefect_server)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chunks"] == n_chunks and 5 <= summary["chunks_skipped"] < n_chunks
    assert_same_screening(out, single_machine_run)


def test_a_promotion_triggers_the_rescore_deployment(prefect_server, twin, weak, tmp_path):
    """The shipped ``campaign/rescore`` deployment and its trigger, pointed at a small campaign that
    screens with a registry's production model: promoting another model (the promote-model flow,
    which emits ``screening.model.promoted``) makes the server run the deployment on the worker,
    and the catalog gains the new model's candidates."""
    import yaml

    from screening.campaign import load_campaign, run_campaign
    from screening.promotion import promote
    from screening.registry import Registry, model_key

    env = prefect_server
    root, good = twin
    registry = Registry.create(tmp_path / "registry", [str(root / "train.csv")], str(root / "val.csv"))
    promote(registry, good)
    spec = {
        "name": "rescore-test",
        "registry": str(registry.root),
        "model": "production",
        "reference": [str(root / "train.csv")],
        "root": str(tmp_path / "campaign"),
        "feedback": str(tmp_path / "feedback"),
        "chunk_size": 200,
        "spaces": [{"name": "li-mn-o", "elements": ["Li", "Mn", "O"], "max_arity": 3, "max_atoms": 6}],
    }
    (tmp_path / "campaign.yaml").write_text(yaml.safe_dump(spec))
    campaign = load_campaign(tmp_path / "campaign.yaml")
    run_campaign(campaign, workers=0)  # screened with the first production model
    new_part = campaign.root / "catalog" / f"model={model_key(weak)}" / "space=li-mn-o" / "part-0.parquet"

    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "prefect.yaml").read_text())
    (rescore,) = [d for d in config["deployments"] if d["name"] == "rescore"]
    rescore["parameters"]["file"] = str(tmp_path / "campaign.yaml")
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(config | {"deployments": [rescore]}))
    _run([PREFECT, "work-pool", "create", "screening-pool", "--type", "process", "--overwrite"], env)
    _run([PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", str(tmp_path / "prefect.yaml")], env)
    worker = _start_worker(env)
    try:
        promoted = [sys.executable, "-m", "flows", "promote-model", "-p", f"registry={registry.root}"]
        _run([*promoted, "-p", f"model={weak}", "-p", "force=true"], env)
        assert registry.resolve("production").name == model_key(weak)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not _completed_runs(env, str(tmp_path / "campaign.yaml")):
            time.sleep(2)
        (triggered,) = _completed_runs(env, str(tmp_path / "campaign.yaml"))  # one run of the deployment: the trigger's
        assert triggered["deployment_id"] is not None and new_part.exists()

        # new DFT results in the campaign's feedback folder: the next run screens against a new known hull
        best = pd.read_parquet(new_part).iloc[0]
        (tmp_path / "feedback").mkdir()
        (tmp_path / "feedback" / "lab.csv").write_text(f"formula,target\n{best['formula']},-9.0\n")
        _run([PREFECT, "deployment", "run", "campaign/rescore", "--watch"], env)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    records = [json.loads(p.read_text()) for p in sorted((campaign.root / "runs").glob("*.json"))]
    assert len({r["key"] for r in records}) == 3  # first model; promoted model; promoted model + feedback
    assert records[-1]["key"].split("-")[0] == model_key(weak) != records[0]["key"].split("-")[0]
    rows = catalog_rows(campaign.root)
    settled = rows[rows["computed_e_form"].notna()]
    assert set(settled["formula"]) == {best["formula"]} and settled["confirmed"].all()
    screened = campaign.work_folder(campaign.spaces[0], records[-1]["key"]) / "ranked.parquet"
    assert best["formula"] not in set(pd.read_parquet(screened)["formula"])  # a known compound now, not a candidate


def _completed_runs(env: dict, campaign_file: str) -> list[dict]:
    request = urllib.request.Request(
        f"{env['PREFECT_API_URL']}/flow_runs/filter",
        data=json.dumps({"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    runs = json.load(urllib.request.urlopen(request, timeout=10))
    return [r for r in runs if r["parameters"].get("file") == campaign_file]


def test_a_killed_campaign_run_resumes_to_the_catalog_of_an_uninterrupted_one(
    prefect_server, long_run_reference, tmp_path
):
    """The campaign deployment on the worker, killed (worker and flow process) mid-space, then run
    again by a new worker: the catalog equals an uninterrupted run's, row for row."""
    import yaml

    from screening.campaign import load_campaign, run_campaign

    env = prefect_server
    space = {"name": "li-tm-oxides", **{k: v for k, v in LONG_RUN.items() if k != "chunk_size"}}
    spec = {"name": "killed", "model": str(PROJECT_ROOT / "data/models/default"), "reference": long_run_reference}
    spec |= {"chunk_size": 50, "spaces": [space]}
    for name in ("killed", "whole"):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(spec | {"root": str(tmp_path / name)}))
    run_campaign(load_campaign(tmp_path / "whole.yaml"), workers=0)

    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "prefect.yaml").read_text())
    (nightly,) = [d for d in config["deployments"] if d["entrypoint"].startswith("flows/campaign") and "schedules" in d]
    deployment = nightly | {"name": "killed", "parameters": {"file": str(tmp_path / "killed.yaml"), "workers": 0}}
    deployment.pop("schedules")
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(config | {"deployments": [deployment]}))
    _run([PREFECT, "work-pool", "create", "screening-pool", "--type", "process", "--overwrite"], env)
    _run([PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", str(tmp_path / "prefect.yaml")], env)

    worker = _start_worker(env)
    work = tmp_path / "killed" / "work" / "li-tm-oxides"
    n_chunks = -(-LONG_RUN_CANDIDATES // 50)
    try:
        _run([PREFECT, "deployment", "run", "campaign/killed"], env)
        deadline, done = time.monotonic() + 300, 0
        while time.monotonic() < deadline:
            done = len(list(work.glob("*/scored/part-*.parquet")))
            if done >= 5:
                break
            time.sleep(0.02)
    finally:
        _kill_with_its_flow_runs(worker)
    assert 5 <= done < n_chunks, f"not killed mid-space ({done} of {n_chunks} chunks)"
    assert not (tmp_path / "killed" / "catalog").exists()

    worker = _start_worker(env)
    try:
        _run([PREFECT, "deployment", "run", "campaign/killed", "--watch"], env, timeout=600)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    pd.testing.assert_frame_equal(catalog_rows(tmp_path / "killed"), catalog_rows(tmp_path / "whole"))


def _kill_with_its_flow_runs(worker: subprocess.Popen) -> None:
    """SIGKILL a worker and the flow-run processes it started (each leads a session of its own,
    with any Dask processes it started in it)."""
    children = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True).stdout.split()
    for pid in map(int, children):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
