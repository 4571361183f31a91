"""The stability model end to end on small real tables: `screening train --ranking` fits it on the
validation table's screening situation, a screen ranks by p_stable, `calibrate --like` hands it
to a model trained on every row, and a damaged stability model is refused by name."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import TWIN_RECIPE, screen_args

from screening.cli import main
from screening.stability import STACK_FEATURES, StabilityModel, StabilityModelError


def test_train_with_ranking_fits_and_records_the_stability_model(twin, capsys):
    _, out = twin
    model = StabilityModel.load(out)
    card = json.loads((out / "card.json").read_text())
    bench = card["stability"]["benchmark"]
    assert {"3", "4"} <= set(bench) <= {"2", "3", "4"} and card["stability"]["sha256"] == model.record["sha256"]
    for m in bench.values():  # cross-fitted figures on a grid of ~1% stable candidates
        assert 0 < m["prevalence"] < 0.05 and 0.5 < m["auc"] <= 1 and m["stable"] > 0
    assert "## Ranking: p_stable" in (out / "MODEL_CARD.md").read_text()
    p = model.probability(np.zeros((3, len(model.record["stack_features"]))))
    assert ((p >= 0) & (p <= 1)).all()


def test_a_screen_ranks_by_p_stable_and_a_final_model_adopts_the_twins_ranking(twin, tmp_path):
    root, out = twin
    args = ["screen", "--elements", "Li,Mn,O,Na", "--max-arity", "3", "--reference", str(root / "train.csv"), "--quiet"]
    assert main([*args, "--model", str(out), "--out", str(tmp_path / "run")]) == 0
    ranked = pd.read_parquet(tmp_path / "run" / "ranked.parquet")
    assert ranked["p_stable"].between(0, 1).all() and ranked["p_stable"].is_monotonic_decreasing
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1)) and ranked["evidence_logit"].notna().all()
    best = ranked.groupby("chemsys")["p_stable"].max()
    first = ranked[ranked["rank_in_system"] == 1].set_index("chemsys")["p_stable"]
    pd.testing.assert_series_equal(first.sort_index(), best.sort_index(), check_names=False)

    final = root / "final"
    assert (
        main(
            [
                "train",
                "--train",
                str(root / "train.csv"),
                str(root / "val.csv"),
                "--no-val",
                "--members",
                "2",
                "--out",
                str(final),
                *TWIN_RECIPE,
            ]
        )
        == 0
    )
    assert main(["calibrate", "--model", str(final), "--like", str(out)]) == 0
    assert json.loads((final / "card.json").read_text())["stability"]["fitted_on_model"] == str(out)
    assert main([*args, "--model", str(final), "--out", str(tmp_path / "final-run")]) == 0
    assert "p_stable" in pd.read_parquet(tmp_path / "final-run" / "ranked.parquet").columns

    other = tmp_path / "other"  # a model of another recipe takes only the ranking
    shutil.copytree(final, other)
    for name in ("stability.pkl", "stability.json"):
        (other / name).unlink()
    assert main(["calibrate", "--model", str(other), "--ranking-from", str(out)]) == 0
    assert StabilityModel.load(other).record["sha256"] == StabilityModel.load(out).record["sha256"]
    assert "copied from" in (other / "MODEL_CARD.md").read_text()


def test_a_damaged_stability_model_is_refused_by_name(twin, tmp_path, capsys):
    _, out = twin
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    blob = bytearray((damaged / "stability.pkl").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (damaged / "stability.pkl").write_bytes(bytes(blob))
    with pytest.raises(StabilityModelError, match="stability.pkl does not match the sha256"):
        StabilityModel.load(damaged)
    code = main(screen_args(damaged, tmp_path / "r", "--no-reference"))
    assert code == 2 and "stability.pkl does not match" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_system_level_classifier_rides_with_the_stability_model_and_a_screen_writes_p_system(twin, tmp_path):
    root, out = twin  # fitted by `screening train --ranking`, which screens the null systems' grids too
    record = json.loads((out / "stability.json").read_text())
    assert record["system"]["systems"] > record["system"]["hide_a_stable_compound"] > 0
    assert 0.5 < record["system"]["auc"] <= 1.0
    frame = pd.read_parquet(out / "rediscovery" / "screen-3-with-null-systems" / "ranked.parquet")
    assert frame["chemsys"].nunique() > 1  # the null systems' grids were screened
    model_dir = tmp_path / "model"
    shutil.copytree(out, model_dir)
    assert StabilityModel.load(model_dir).system is not None  # saved and checked like the rest

    assert (
        main(
            screen_args(
                model_dir, tmp_path / "run", "--reference", str(root / "train.csv"), elements="Li,Mn,O,Na", max_arity=3
            )
        )
        == 0
    )
    systems = pd.read_parquet(tmp_path / "run" / "systems.parquet")
    ranked = pd.read_parquet(tmp_path / "run" / "ranked.parquet")
    assert set(systems["chemsys"]) == set(ranked["chemsys"]) and systems["p_system"].between(0, 1).all()
    assert systems["p_system"].is_monotonic_decreasing
    expected = ranked.groupby("chemsys")["p_stable"].sum()
    np.testing.assert_allclose(systems.set_index("chemsys")["p_stable_sum"].loc[expected.index], expected)
    by_system = pd.read_csv(tmp_path / "run" / "top_by_system.csv")
    assert by_system["p_system"].between(0, 1).all()
    # the expected count weighed by p_system: sum over candidates of p_system(its system) x p_stable
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    weighed = (ranked["p_stable"] * ranked["chemsys"].map(systems.set_index("chemsys")["p_system"])).sum()
    assert summary["expected_stable_with_p_system"] == pytest.approx(weighed, abs=0.06)
    assert summary["expected_stable_with_p_system"] < summary["expected_stable"]


def test_the_plain_procedure_fits_no_system_level_classifier(twin, tmp_path):
    """Without null systems (the benchmarks' plain variant) the stacker is fitted the same way and
    nothing is fitted for p_system."""
    from screening.stability_fit import fit_stability

    root, out = twin
    plain = fit_stability(str(out), [str(root / "train.csv")], str(root / "val.csv"), tmp_path, log=lambda m: None)
    shipped = StabilityModel.load(out)
    assert plain.model.system is None and "system" not in plain.model.record
    assert plain.frame.groupby("chemsys")["stable"].any().all()  # only systems that hold a stable compound
    assert plain.model.record["fitted_on"]["stable"] == shipped.record["fitted_on"]["stable"]
    assert plain.frame["p_stable"].between(0, 1).all()


def test_the_classifiers_see_a_candidate_on_a_hull_at_exactly_zero():
    """A candidate on the combined hull is at 0 +- 1e-15 by rounding, its size and sign set by
    how the hull was computed: the stacker's and the system-level classifier's inputs do not
    depend on it, and a distance beyond the tolerance reaches them as it is."""
    from screening.stability import stacker_inputs, system_stats, system_table

    def frame(combined, known):
        return pd.DataFrame(
            {
                "chemsys": ["Li-O", "Li-O", "Mn-O"],
                "n_elements": [2, 2, 2],
                "e_form_pred": [-2.0, -1.0, -1.5],
                "e_form_std": [0.02, 0.03, 0.01],
                "known_hull_energy": [-1.98, -1.1, -1.5],
                "e_above_known_hull": known,
                "e_above_combined_hull": combined,
                "evidence_logit": [1.0, -2.0, 0.5],
                "log_system_known": [1.0, 1.0, 0.0],
                "log_sub_hull_compounds": [0.0, 0.0, 0.0],
                "p_stable": [0.6, 0.01, 0.3],
            }
        )

    exact = frame([0.0, 0.1, 0.0], [-0.02, 0.1, 0.0])
    rounded = frame([-2.220446049250313e-16, 0.1, 4.4e-16], [-0.02, 0.1, -1.1e-16])
    np.testing.assert_array_equal(
        stacker_inputs(rounded, system_stats(rounded)), stacker_inputs(exact, system_stats(exact))
    )
    pd.testing.assert_frame_equal(system_table(rounded), system_table(exact), check_exact=True)
    beyond = frame([-2e-9, 0.1, 2e-9], [-0.02, 0.1, -2e-9])
    inputs = stacker_inputs(beyond, system_stats(beyond))
    assert inputs[[0, 2], list(STACK_FEATURES).index("e_above_combined_hull")].tolist() == [-2e-9, 2e-9]
    assert system_table(beyond).loc["Mn-O", "share_below_known_hull"] == 1.0


def test_a_saved_stability_model_records_and_warns_of_splits_inside_rounding_noise(tmp_path, caplog):
    from conftest import classifier_split_inside_rounding

    noisy = classifier_split_inside_rounding()
    model = StabilityModel(noisy, noisy, (np.array([0.0, 1.0]), np.array([0.0, 1.0])))
    with caplog.at_level("WARNING"):
        model.save(tmp_path)
    record = json.loads((tmp_path / "stability.json").read_text())
    assert record["rounding_splits"]["stacker"] == list(STACK_FEATURES[:2])  # the first two columns' names
    assert "splits inside rounding noise" in caplog.text
