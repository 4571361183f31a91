import pandas as pd
import pytest

from flows.featurize_dataset import featurize, featurize_dataset

TINY_BRNET = {"arch": "brnet", "features": "elemfrac86", "members": 2, "batch_size": 64, "device": "cpu"}


def test_featurize_task_function(tmp_path):
    source = tmp_path / "in.csv"
    pd.DataFrame({"formula": ["NaCl", "Xx", "Fe2O3"]}).to_csv(source, index=False)
    summary = featurize.fn(str(source), str(tmp_path / "out"), "elemfrac86", 2, None, 0)
    assert (summary["rows_written"], summary["rows_rejected"], summary["chunks"]) == (2, 1, 2)


def test_featurize_flow_runs_under_prefect(prefect_api, tmp_path):
    source = tmp_path / "in.csv"
    pd.DataFrame({"formula": ["NaCl", "Li0.5CoO2", "Ca3(PO4)2", ""]}).to_csv(source, index=False)
    summary = featurize_dataset(str(source), str(tmp_path / "out"), "magpie145", 3, None, 0)
    assert summary["rows_in"] == 4 and summary["rows_rejected"] == 1
    assert len(pd.read_parquet(tmp_path / "out" / "features")) == 3


def test_screen_flow_under_prefect(prefect_api, tmp_path):
    import torch

    from flows.screen_candidates import screen_candidates
    from screening.models import Ensemble, StackedNet

    net = StackedNet("elemnet", 86, 2)
    net.reset_parameters([1, 2])
    card = {"architecture": "elemnet", "d_in": 86, "members": 2, "featurizer": "elemfrac86"}
    Ensemble(net, torch.zeros(86), torch.ones(86), -1.0, 0.1, card).save(tmp_path / "model")
    summary = screen_candidates(
        model=str(tmp_path / "model"), out=str(tmp_path / "run"), elements=["Li", "O", "Mn"], max_arity=3, device="cpu"
    )
    assert summary["candidates"] == 3 * 31 + 109 and summary["scored"] == summary["candidates"]
    assert (tmp_path / "run" / "ranked.parquet").exists()


def test_train_models_flow_under_prefect(prefect_api, data_dir, tmp_path):
    from flows.train_models import train_models
    from screening.models.config import TrainConfig
    from screening.models.ensemble import load_model

    rows = pd.read_csv(data_dir / "mp_e_form" / "train.csv").head(400)
    rows.iloc[:300].to_csv(tmp_path / "train.csv", index=False)
    pd.concat([rows.iloc[300:], pd.DataFrame({"formula": ["Xx2O"], "target": [-1.0]})]).to_csv(
        tmp_path / "test.csv", index=False
    )
    metrics = train_models(
        train=str(tmp_path / "train.csv"),
        test=str(tmp_path / "test.csv"),
        out=str(tmp_path / "model"),
        **TINY_BRNET,
        epochs=3,
    )
    assert (
        set(metrics) == {"validation", "test"} and metrics["test"]["n"] == 100 and metrics["test"]["rows_rejected"] == 1
    )
    model = load_model(str(tmp_path / "model"))
    assert model.members == 2 and model.card["data"]["val"]["split"] == "10% of train, seeded"
    assert (tmp_path / "model" / "parity_test.png").exists() and (tmp_path / "model" / "MODEL_CARD.md").exists()

    # a final model on every row of two tables (and of an auxiliary source, through its own
    # output unit): no validation of its own, tested on the test table
    pd.read_csv(data_dir / "oqmd_hf" / "train.csv").head(200).to_csv(tmp_path / "oqmd.csv", index=False)
    final = train_models(
        train=[str(tmp_path / "train.csv"), str(tmp_path / "test.csv")],
        holdout=False,
        out=str(tmp_path / "final"),
        test=str(tmp_path / "test.csv"),
        aux=[str(tmp_path / "oqmd.csv")],
        **TINY_BRNET,
        epochs=2,
        weight_decay=0.05,
    )
    assert set(final) == {"test"} and final["test"]["rows_rejected"] == 1
    card = load_model(str(tmp_path / "final")).card
    assert [t["rows_used"] for t in card["data"]["train"]] == [300, 100] and card["metrics"] == {}
    assert card["data"]["auxiliary"][0]["rows_used"] == 200 and card["training"]["auxiliary"] == [
        str(tmp_path / "oqmd.csv")
    ]
    recipe = TrainConfig().weight_decay  # the shipped recipe's, the default everywhere
    assert card["training"]["weight_decay"] == 0.05 and model.card["training"]["weight_decay"] == recipe == 0.1


def test_train_models_flow_fits_the_ranking(prefect_api, data_dir, tmp_path):
    from flows.train_models import train_models
    from screening.stability import StabilityModel

    rows, val = pd.read_csv(data_dir / "mp_e_form" / "train.csv"), pd.read_csv(data_dir / "mp_e_form" / "val.csv")
    rows.head(3000).to_csv(tmp_path / "train.csv", index=False)
    val.head(600).to_csv(tmp_path / "val.csv", index=False)
    (tmp_path / "feedback").mkdir()  # new DFT results of a campaign: 50 new rows and one of a validation composition
    pd.concat([rows.iloc[3000:3050], val.iloc[:1]]).to_csv(tmp_path / "feedback" / "lab.csv", index=False)
    with pytest.raises(ValueError, match="needs a val table"):
        train_models(train=str(tmp_path / "train.csv"), out=str(tmp_path / "x"), ranking=True)
    metrics = train_models(
        train=str(tmp_path / "train.csv"),
        val=str(tmp_path / "val.csv"),
        out=str(tmp_path / "model"),
        arch="elemnet",
        features="elemfrac86",
        members=2,
        epochs=2,
        batch_size=256,
        device="cpu",
        ranking=True,
        feedback=str(tmp_path / "feedback"),
    )
    assert {"3", "4"} <= set(metrics["ranking"]) and all(0 < m["auc"] <= 1 for m in metrics["ranking"].values())
    fitted_on = StabilityModel.load(tmp_path / "model").record["fitted_on"]
    assert fitted_on["hidden"] == str(tmp_path / "val.csv") and fitted_on["known"] == [str(tmp_path / "train.csv")]
    from screening.models.ensemble import load_model

    tables = load_model(str(tmp_path / "model")).card["data"]["train"]  # the feedback trained, minus the leak
    assert [t["rows_used"] for t in tables] == [3000, 50] and tables[1]["rows_dropped_as_validation_compositions"] == 1


def test_flow_command_line_errors_are_one_line(capsys, monkeypatch):
    from flows._common import retry_on_io, run_from_command_line

    def unknown_element():
        raise ValueError("unknown element symbol(s): 'Xx'")

    def no_server():
        raise RuntimeError("Failed to reach API at http://127.0.0.1:9/api/")

    assert run_from_command_line("screen-candidates", unknown_element) == 2
    assert capsys.readouterr().err == "screen-candidates: error: unknown element symbol(s): 'Xx'\n"
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert run_from_command_line("screen-candidates", no_server) == 2
    assert (
        "no Prefect server answers at http://127.0.0.1:9/api; start one with `prefect server start`"
        in capsys.readouterr().err
    )

    def bad_parameter():  # a real validation error: the flow's max_arity is bounded 2..5
        from flows.screen_candidates import screen_candidates

        screen_candidates.validate_parameters({"model": "m", "out": "o", "max_arity": 7})

    assert run_from_command_line("screen-candidates", bad_parameter) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("screen-candidates: error:") and "max_arity" in err[0]

    class State:
        def __init__(self, error):
            self.data = error

    assert retry_on_io(None, None, State(OSError("connection reset"))) is True
    assert retry_on_io(None, None, State(FileNotFoundError("model"))) is False
    assert retry_on_io(None, None, State(ValueError("unknown element"))) is False


def test_an_interrupted_flow_command_says_how_to_resume(capsys):
    from flows._common import run_from_command_line

    def interrupted():
        raise KeyboardInterrupt

    assert run_from_command_line("screen-candidates", interrupted) == 130
    assert capsys.readouterr().err.strip() == (
        "screen-candidates: interrupted; run the same command again to resume (finished chunks are kept)"
    )
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_SERVER_ANALYTICS_ENABLED"}
    shown = subprocess.run(
        [sys.executable, "-c", "import os, flows; print(os.environ.get('PREFECT_SERVER_ANALYTICS_ENABLED'))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert shown == "false"  # the flows' entry points turn Prefect's server analytics off themselves


def test_flows_run_from_the_command_line_with_their_own_parameters(capsys):
    from flows.__main__ import main, parse_parameters

    assert parse_parameters(['elements=["Li", "O"]', "max_arity=2", "out=runs/x", "bf16=true"]) == {
        "elements": ["Li", "O"],
        "max_arity": 2,
        "out": "runs/x",
        "bf16": True,
    }
    assert main(["screen-candidates", "-p", "max_aritty=2"]) == 2  # refused before any run starts
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no parameter(s) max_aritty" in err[0] and "max_arity" in err[0]
    assert main(["train-models", "-p", "members"]) == 2
    assert "is not name=value" in capsys.readouterr().err

    from flows.screen_candidates import screen_candidates
    from flows.screen_early import PARAMETERS, start_early
    from screening import cluster, screen_plan

    # what starts before the flow's code is imported knows the flow's parameters, without Prefect
    assert PARAMETERS == set(screen_candidates.parameters.properties)
    with start_early({"out": "runs/x"}):  # no model: nothing starts, the flow will say why
        assert not cluster._EARLY and not screen_plan._EARLY_PLANS
    given = {"model": "data/models/default", "out": "runs/x", "elements": ["Li", "O"], "chunk_size": 5}
    with start_early(given | {"max_aritty": 3}):  # a name the flow refuses: nothing starts
        assert not cluster._EARLY and not screen_plan._EARLY_PLANS
    with start_early(given | {"workers": 0}):  # scored in this process: the plan only
        assert len(screen_plan._EARLY_PLANS) == 1 and not cluster._EARLY
    assert not cluster._EARLY and not screen_plan._EARLY_PLANS


def test_a_command_starts_prefects_temporary_server_as_it_begins_and_falls_back_to_prefects_own(tmp_path):
    """flows._api: the server process starts before the flow's code is imported, the flow runs on
    it (Prefect starts none of its own), it ends with the command; one that never answers leaves
    the flow to Prefect's own temporary server."""
    import os
    import subprocess
    import sys

    import psutil

    script = """
import sys
from flows._api import TemporaryApi
api = TemporaryApi.start_if_needed()
assert api.process is not None
from prefect import flow
from prefect.client.orchestration import get_client

@flow
def where() -> str:
    from prefect.settings import get_current_settings

    with get_client(sync_client=True) as client:
        return str(client.api_url) + " heartbeats " + str(get_current_settings().flows.heartbeat_frequency)

with api.serving():
    print("ran on", where(), "started", api.url, "pid", api.process.pid)
print("prefect started its own:", "prefect.server.api.server" in sys.modules)
dead = TemporaryApi.start_if_needed()
dead.process.kill()
with dead.serving():
    print("fallback ran on", where())
print("prefect started its own:", "prefect.server.api.server" in sys.modules)
"""
    unused = """
import psutil
from flows._api import TemporaryApi
api = TemporaryApi.start_if_needed()
running = [p for p in psutil.Process().children() if p.status() != psutil.STATUS_ZOMBIE]
print("server:", api.process, "processes:", len(running))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")} | {"PREFECT_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith(("ran on", "prefect", "fallback"))]
    assert done.returncode == 0, done.stderr[-3000:]
    # a temporary server forbidden by Prefect's settings (read after the spawn): stopped at once; an API named: none
    for setting in ({"PREFECT_SERVER_EPHEMERAL_ENABLED": "false"}, {"PREFECT_API_URL": "http://127.0.0.1:9/api"}):
        done = subprocess.run([sys.executable, "-c", unused], env=env | setting, capture_output=True, text=True)
        assert done.returncode == 0 and "server: None processes: 0" in done.stdout, done.stdout + done.stderr[-2000:]
    ran, own_first, fallback, own_then = lines
    used, started, pid = ran.split()[2], ran.split()[6], int(ran.split()[8])
    assert used.rstrip("/") == started and own_first.endswith("False")
    assert ran.split()[3:5] == ["heartbeats", "None"]  # nothing watches them on a server that ends with the command
    assert fallback.split()[4:6] == ["heartbeats", "180"]  # Prefect's own settings elsewhere
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # ended with it
    assert fallback.split()[3].rstrip("/") != started and own_then.endswith("True")
