"""The model registry and promotion on real small models: a candidate becomes production only if it
is not worse on the registry's fixed benchmark; figures that would not be honest are refused; a
campaign that screens with ``production`` re-screens after a promotion."""

import json

import pytest
import yaml
from conftest import reference_slices

from screening.campaign import load_campaign, plan_campaign, run_campaign
from screening.catalog import top
from screening.cli import main
from screening.promotion import TOLERANCE, NotComparableError, benchmark_figures, compare, promote, unsound
from screening.registry import Benchmark, Registry, Table, model_key


def test_the_first_model_becomes_production_and_a_worse_one_does_not(twin, weak, tmp_path, capsys):
    root, good = twin
    folder = tmp_path / "registry"
    init = ["registry", "init", str(folder), "--known", str(root / "train.csv"), "--hidden", str(root / "val.csv")]
    assert main(init) == 0
    registry = Registry(folder)
    assert registry.aliases() == {}  # created, nothing promoted yet
    first = promote(registry, good)
    assert first["promoted"] and first["production"] is None
    assert first["figures"]["candidate"]["mae_source"] == "measured"
    assert registry.resolve("production").name == model_key(good)

    second = promote(registry, weak)
    assert not second["promoted"]
    assert registry.aliases() == {"production": model_key(good), "candidate": model_key(weak)}
    figures = second["figures"]
    assert figures["candidate"]["mae"] > figures["production"]["mae"] + TOLERANCE["mae"]
    assert any(reason.startswith("validation MAE") for reason in second["reasons"])
    card = json.loads((good / "card.json").read_text())  # the measured MAE is the validation the card recorded
    assert figures["production"]["mae"] == pytest.approx(card["metrics"]["validation"]["mae"], abs=2e-4)

    assert main(["registry", "promote", str(folder), str(weak), "--force"]) == 0
    assert registry.resolve("production").name == model_key(weak)
    assert main(["registry", "show", str(folder)]) == 0
    shown = capsys.readouterr().out
    assert "(forced)" in shown and "worse: validation MAE" in shown and "not promoted" in shown
    events = [r["event"] for r in registry.history()]
    assert events.count("registered") == 2 and events.count("promoted") == 2 and events.count("evaluated") == 1
    assert promote(registry, weak)["reasons"] == ["already production"]


def test_a_candidate_whose_stability_model_splits_inside_rounding_noise_is_not_promoted(twin, tmp_path):
    import shutil

    from conftest import classifier_split_inside_rounding

    from screening.stability import StabilityModel

    root, good = twin
    assert unsound(good) == []
    noisy = tmp_path / "noisy"
    shutil.copytree(good, noisy)
    stability = StabilityModel.load(noisy)
    stability.stacker = classifier_split_inside_rounding()
    stability.save(noisy)
    registry = Registry.create(tmp_path / "registry", [str(root / "train.csv")], str(root / "val.csv"))
    record = promote(registry, noisy)
    assert not record["promoted"] and "production" not in registry.aliases()
    assert any("splits inside rounding noise (stacker: evidence_logit, evidence_gap" in r for r in record["reasons"])


def test_figures_that_would_not_be_honest_are_refused(twin, data_dir, tmp_path):
    root, good = twin
    other = tmp_path / "other"
    other.mkdir()
    known, hidden = reference_slices(other, 3000, 900)  # another hidden table: another screening situation
    with pytest.raises(NotComparableError, match="stability model was not fitted on the benchmark's tables"):
        benchmark_figures(good, Registry.create(tmp_path / "r1", [str(known)], str(hidden)).benchmark())
    # a model judged on rows it was trained on: no twin validated on them, so no figure at all
    with pytest.raises(NotComparableError, match="trained on the benchmark's"):
        benchmark_figures(good, Registry.create(tmp_path / "r2", [str(hidden)], str(root / "train.csv")).benchmark())
    with pytest.raises(FileExistsError, match="another benchmark"):
        Registry.create(tmp_path / "r1", [str(known)], str(root / "val.csv"))
    with pytest.raises(KeyError, match="no model or alias 'production'"):
        Registry(tmp_path / "r1").resolve("production")
    with pytest.raises(FileNotFoundError, match="not a model registry"):
        Registry(tmp_path / "nowhere")


def test_the_shipped_model_is_judged_by_its_recipes_twin(data_dir):
    tables = Benchmark((Table.of(data_dir / "mp_e_form/train.csv"),), Table.of(data_dir / "mp_e_form/val.csv"))
    figures = benchmark_figures("data/models/default", tables)
    card = json.loads(open("data/models/default/card.json").read())
    assert figures["mae"] == card["recipe_validation"]["metrics"]["validation"]["mae"]
    assert figures["mae_source"].startswith("its recipe's twin")
    assert figures["ranking"]["3"]["precision_top_n"] == card["stability"]["benchmark"]["3"]["precision_top_n"]


def test_compare_names_every_metric_beyond_its_tolerance():
    ranking = {k: {"precision_top_n": 0.6, "auc": 0.98, "recall_top_5pct": 0.9} for k in ("3", "4")}
    production = {"mae": 0.070, "ranking": ranking}
    assert compare(production, production) == []
    slightly = {"mae": 0.070 + TOLERANCE["mae"] / 2, "ranking": ranking}
    assert compare(slightly, production) == []
    worse_ranking = {k: dict(v) for k, v in ranking.items()}
    worse_ranking["4"]["auc"] -= 2 * TOLERANCE["auc"]
    assert compare({"mae": 0.05, "ranking": worse_ranking}, production) == ["4-element auc 0.976 < 0.980 - 0.002"]


def test_a_campaign_on_production_rescreens_after_a_promotion(twin, weak, tmp_path):
    root, good = twin
    registry = Registry.create(tmp_path / "registry", [str(root / "train.csv")], str(root / "val.csv"))
    promote(registry, good)
    spec = {
        "name": "promoted",
        "model": "production",
        "registry": str(registry.root),
        "reference": [str(root / "train.csv")],
        "root": str(tmp_path / "campaign"),
        "chunk_size": 200,
        "spaces": [{"name": "li-mn-o", "elements": ["Li", "Mn", "O"], "max_arity": 3, "max_atoms": 6}],
    }
    file = tmp_path / "campaign.yaml"
    file.write_text(yaml.safe_dump(spec))
    campaign = load_campaign(file)
    first = run_campaign(campaign, workers=0)
    assert first["key"].startswith(model_key(good)) and plan_campaign(campaign)[0]["left"] == 0

    promote(registry, weak, force=True)
    assert plan_campaign(campaign)[0]["done"] == 0  # new production, new work
    second = run_campaign(campaign, workers=0)
    assert second["key"].startswith(model_key(weak)) and second["spaces"][0]["published"]
    assert set(top(campaign.root, 5)["model"]) == {model_key(weak)}  # the catalog's best: the new model's
    assert set(top(campaign.root, 500, model="all")["model"]) == {model_key(good), model_key(weak)}
