"""Campaigns: checked files, budgeted runs that continue where the last stopped, a catalog that
equals an uninterrupted run's, and queries on it."""

import json

import pandas as pd
import pytest
import torch
import yaml
from conftest import catalog_rows

from screening.campaign import load_campaign, plan_campaign, run_campaign
from screening.catalog import diff, top
from screening.cli import main
from screening.models import Ensemble, StackedNet


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    """An untrained 2-member ensemble on element fractions: scores are arbitrary but real."""
    net = StackedNet("irnet17", 86, 2)
    net.reset_parameters([7, 8])
    card = {"architecture": "irnet17", "d_in": 86, "members": 2, "featurizer": "elemfrac86"}
    directory = tmp_path_factory.mktemp("model")
    Ensemble(net, torch.zeros(86), torch.ones(86) * 0.1, -1.0, 0.05, card).save(directory)
    return str(directory)


def write_campaign(tmp_path, toy_model, root, budget=None, **extra):
    known = tmp_path / "known.csv"
    if not known.exists():
        pd.DataFrame(
            {"formula": ["Li2O", "MnO", "Mn2O3", "LiMnO2", "FeO"], "target": [-2.0, -1.9, -2.0, -1.9, -1.4]}
        ).to_csv(known, index=False)
    spec = {
        "name": "toy",
        "model": toy_model,
        "reference": [str(known)],
        "root": str(root),
        "chunk_size": 10,
        "spaces": [
            {"name": "li-mn-o", "elements": ["Li", "Mn", "O"], "max_arity": 3, "max_atoms": 6},
            {"name": "fe-o", "systems": [["Fe", "O"]], "max_atoms": 8},
        ],
    } | extra
    if budget:
        spec["budget"] = budget
    path = tmp_path / f"{root.name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_budgeted_campaign_continues_until_done_and_equals_one_uninterrupted_run(toy_model, tmp_path, capsys):
    whole = load_campaign(write_campaign(tmp_path, toy_model, tmp_path / "whole"))
    record = run_campaign(whole, workers=0, log=lambda m: None)
    assert record["stopped"] == "done" and all(s["published"] for s in record["spaces"])
    sizes = {r["space"]: r["candidates"] for r in plan_campaign(whole)}

    path = write_campaign(tmp_path, toy_model, tmp_path / "piecewise", budget={"candidates": 25})
    piecewise = load_campaign(path)
    first = run_campaign(piecewise, workers=0, log=lambda m: None)
    assert first["stopped"] == "budget" and first["spaces"][0]["candidates_scored"] == 30  # three chunks of 10
    status = {r["space"]: r for r in plan_campaign(piecewise)}
    assert status["li-mn-o"]["done"] == 30 and status["li-mn-o"]["left"] == sizes["li-mn-o"] - 30
    assert not status["li-mn-o"]["published"] and status["fe-o"]["done"] == 0
    runs = 1
    while run_campaign(piecewise, workers=0, log=lambda m: None)["stopped"] == "budget":
        runs += 1
        assert runs < 20
    assert all(r["published"] and r["left"] == 0 for r in plan_campaign(piecewise))
    pd.testing.assert_frame_equal(catalog_rows(tmp_path / "piecewise"), catalog_rows(tmp_path / "whole"))

    again = run_campaign(piecewise, workers=0, log=lambda m: None)  # nothing left: nothing redone
    assert again["stopped"] == "done" and again["spaces"] == []
    best = top(tmp_path / "piecewise", 5)
    assert len(best) == 5 and set(best["space"]) <= {"li-mn-o", "fe-o"}
    assert diff(tmp_path / "piecewise", 5)["entered"] == []  # the last two runs share their best

    assert main(["campaign", "plan", str(path)]) == 0
    assert "li-mn-o" in capsys.readouterr().out
    assert main(["catalog", "top", str(path), "-n", "3"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 4


def test_new_reference_data_is_new_work(toy_model, tmp_path):
    path = write_campaign(tmp_path, toy_model, tmp_path / "c")
    run_campaign(load_campaign(path), workers=0, log=lambda m: None)
    known = tmp_path / "known.csv"
    known.write_text(known.read_text() + "Li2MnO3,-2.1\n")  # a new DFT result
    campaign = load_campaign(path)
    assert not any(r["published"] for r in plan_campaign(campaign))  # keyed by the reference data
    record = run_campaign(campaign, workers=0, log=lambda m: None)
    assert all(s["published"] for s in record["spaces"])
    assert len(list((tmp_path / "c" / "work" / "li-mn-o").iterdir())) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key(s) 'colour'"),
        ({"budget": {"candidates": -5}}, "budget.candidates: -5 is not a positive int"),
        ({"spaces": [{"name": "x", "elements": ["Li", "Xx"]}]}, "space 'x': unknown element symbol(s): 'Xx'"),
        ({"spaces": [{"name": "x", "elements": ["Li", "O"], "max_arity": "4"}]}, "'max_arity' is an integer"),
        ({"spaces": [{"name": "x"}]}, "space 'x': give elements"),
        ({"spaces": [{"name": "a", "elements": ["Li", "O"]}, {"name": "a", "systems": [["Fe", "O"]]}]}, "repeat"),
        ({"name": "has space"}, "is not a name"),
    ],
)
def test_campaign_files_are_checked_with_the_key_named(toy_model, tmp_path, change, message):
    path = write_campaign(tmp_path, toy_model, tmp_path / "bad", **change)
    with pytest.raises(ValueError) as info:
        load_campaign(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert json.dumps(str(info.value)).count("\\n") == 0  # one line


def test_the_campaign_flow_runs_as_far_as_its_budget_and_reports_the_catalog_diff(prefect_api, toy_model, tmp_path):
    from prefect.client.orchestration import get_client

    from flows.campaign import campaign

    path = write_campaign(tmp_path, toy_model, tmp_path / "flow", budget={"candidates": 40})
    first = campaign(file=str(path), workers=0)
    assert first["stopped"] == "budget"
    second = campaign(file=str(path), workers=0)
    assert second["stopped"] == "done" and all(r["published"] for r in plan_campaign(load_campaign(path)))

    async def latest_artifacts():
        async with get_client() as client:
            return await client.read_latest_artifacts()

    import asyncio

    latest = {a.key: a for a in asyncio.run(latest_artifacts())}
    assert "Entered the best 20" in latest["campaign-diff"].data and "campaign-status" in latest


def test_new_dft_results_join_the_known_hull_and_mark_the_candidates_they_settle(toy_model, tmp_path):
    import duckdb

    feedback = tmp_path / "feedback"
    path = write_campaign(tmp_path, toy_model, tmp_path / "fb", feedback=str(feedback))
    run_campaign(load_campaign(path), workers=0, log=lambda m: None)
    con = duckdb.connect(str(tmp_path / "fb" / "catalog.duckdb"), read_only=True)
    picked = con.execute(
        "SELECT formula, known_hull_energy FROM candidates WHERE chemsys = 'Li-Mn-O' ORDER BY formula LIMIT 2"
    ).fetchall()
    con.close()
    (good, good_hull), (bad, bad_hull) = picked
    feedback.mkdir()
    (feedback / "dft-batch-1.csv").write_text(f"formula,target\n{good},{good_hull - 0.05}\n{bad},{bad_hull + 0.2}\n")

    campaign = load_campaign(path)
    assert not any(r["published"] for r in plan_campaign(campaign))  # the known hull changed: new work
    assert any(str(feedback / "dft-batch-1.csv") == r for r in campaign.references())
    run_campaign(campaign, workers=0, log=lambda m: None)
    con = duckdb.connect(str(tmp_path / "fb" / "catalog.duckdb"), read_only=True)
    marked = con.execute(
        "SELECT formula, computed_source, round(computed_e_above_known_hull, 6), confirmed FROM candidates "
        "WHERE computed_e_form IS NOT NULL ORDER BY formula"
    ).fetchall()
    con.close()
    # carried over from the version screened before the results (they are known compounds now)
    assert marked == [(good, "dft-batch-1", -0.05, True), (bad, "dft-batch-1", 0.2, False)]


def test_a_bf16_campaign_is_work_of_its_own_and_publishes_under_the_same_model(toy_model, tmp_path):
    fp32 = run_campaign(load_campaign(write_campaign(tmp_path, toy_model, tmp_path / "a")), workers=0, log=print)
    bf16 = run_campaign(load_campaign(write_campaign(tmp_path, toy_model, tmp_path / "b", bf16=True)), workers=0)
    assert bf16["key"] == fp32["key"] + "-bf16" and all(s["published"] for s in bf16["spaces"])
    rows = catalog_rows(tmp_path / "b")
    assert set(rows["model_key"]) == {fp32["key"].split("-")[0]} and set(rows["reference_key"]) == {
        fp32["key"].split("-")[1]
    }
    with pytest.raises(ValueError, match="bf16: 'yes' is not true or false"):
        load_campaign(write_campaign(tmp_path, toy_model, tmp_path / "c", bf16="yes"))


def test_runs_started_within_one_second_are_ordered_by_their_start(toy_model, tmp_path, monkeypatch):
    import uuid

    from screening import campaign as campaign_module

    campaign = load_campaign(write_campaign(tmp_path, toy_model, tmp_path / "c"))
    run_campaign(campaign, workers=0, log=lambda m: None)
    suffixes = iter(["ffffff", "000000"])  # the later run draws the smaller random suffix
    monkeypatch.setattr(campaign_module.uuid, "uuid4", lambda: uuid.UUID(next(suffixes) + "0" * 26))
    first = run_campaign(campaign, workers=0, log=lambda m: None)  # nothing left: both end at once
    second = run_campaign(campaign, workers=0, log=lambda m: None)
    assert first["run"] < second["run"] and diff(tmp_path / "c", 5)["run"] == second["run"]
