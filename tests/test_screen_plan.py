"""screening.screen_plan: a plan prepared early (while Prefect's server starts) and taken by the run."""

import json

import pandas as pd
import pytest
from conftest import li_mn_o


def test_a_plan_prepared_early_is_taken_by_the_run_and_writes_nothing_until_then(
    toy_model, reference, tmp_path, monkeypatch
):
    """screen_plan.planned_early: the preparation runs once, on its thread, and writes nothing; plan()
    of the same request takes it (or its error), re-checks the folder and only then starts the run."""
    from screening import screen_plan
    from screening.models.ensemble import ModelLoadError
    from screening.screen import finish, score
    from screening.screen_plan import plan, planned_early

    calls = []
    prepare = screen_plan.prepare
    monkeypatch.setattr(screen_plan, "prepare", lambda request: calls.append(request) or prepare(request))
    request = li_mn_o(toy_model, reference, tmp_path / "early", chunk_size=50)
    with planned_early(request):
        (future,) = screen_plan._EARLY_PLANS.values()
        future.result()
        assert not (tmp_path / "early").exists()  # prepared, nothing written or locked
        prepared = plan(request)
        assert calls == [request] and not screen_plan._EARLY_PLANS  # taken, not prepared again
    summary = finish(prepared, score(prepared, workers=0, progress=False), 0.0)
    again = plan(li_mn_o(toy_model, reference, tmp_path / "late", chunk_size=50))
    expected = finish(again, score(again, workers=0, progress=False), 0.0)
    assert summary["scored"] == expected["scored"] > 80
    ranked = [pd.read_parquet(tmp_path / d / "ranked.parquet") for d in ("early", "late")]
    pd.testing.assert_frame_equal(*ranked)

    # its error is the plan's, raised by plan(); a plan of another request is its own
    broken = li_mn_o(tmp_path / "no-model", reference, tmp_path / "broken", chunk_size=50)
    with planned_early(broken), planned_early(request):
        with pytest.raises(ModelLoadError, match="does not exist"):
            plan(broken)
        assert not (tmp_path / "broken").exists()
        other = plan(li_mn_o(toy_model, reference, tmp_path / "other", chunk_size=50))
        assert other.out == tmp_path / "other" and len(screen_plan._EARLY_PLANS) == 1
    assert not screen_plan._EARLY_PLANS  # never taken: dropped with the block

    # a folder taken by another run while the plan was prepared is refused when the run starts
    contested = li_mn_o(toy_model, reference, tmp_path / "contested", chunk_size=50)
    with planned_early(contested):
        screen_plan._EARLY_PLANS[screen_plan._request_key(contested)].result()
        (tmp_path / "contested").mkdir()
        (tmp_path / "contested" / "_manifest.json").write_text(json.dumps({"elements": ["Na", "Cl"]}))
        with pytest.raises(FileExistsError, match="different"):
            plan(contested)


def test_a_plan_not_prepared_early_checks_its_folder_once(toy_model, reference, tmp_path, monkeypatch):
    """plan() re-checks the folder only for a plan prepared early (the folder may have changed
    while it was prepared); otherwise prepare() has just checked it, and the manifest is the same."""
    from screening import screen_plan

    checks = []
    check = screen_plan.check_folder
    monkeypatch.setattr(screen_plan, "check_folder", lambda *a, **k: checks.append(a[1]) or check(*a, **k))
    request = li_mn_o(toy_model, reference, tmp_path / "run", chunk_size=50)
    prepared = screen_plan.plan(request)
    assert len(checks) == 1
    manifest = json.loads((tmp_path / "run" / "_manifest.json").read_text())
    assert {k: manifest[k] for k in checks[0]} == json.loads(json.dumps(checks[0]))
    with screen_plan.planned_early(request):
        screen_plan._EARLY_PLANS[screen_plan._request_key(request)].result()
        screen_plan.plan(request)  # resumes the same folder; checked when prepared and again
    assert len(checks) == 3 and checks[1] == checks[2] == checks[0]
    assert prepared.out == tmp_path / "run"
