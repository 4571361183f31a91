"""The predictive uncertainty: CRPS, the fitted spread, and the calibrate command."""

import json

import numpy as np
import pytest
from scipy import integrate
from scipy.special import ndtr

from screening.cli import main
from screening.models.calibration import crps_normal, fit_spread, predictive_std


def test_crps_closed_form_equals_its_definition():
    """CRPS = integral of (F(x) - 1[x >= observed])^2 over x, for a normal F."""
    for residual, sigma in [(0.0, 1.0), (0.3, 0.1), (-2.0, 0.5)]:
        below, _ = integrate.quad(lambda x, s=sigma: ndtr(x / s) ** 2, -50 * sigma, residual)
        above, _ = integrate.quad(lambda x, s=sigma: (1 - ndtr(x / s)) ** 2, residual, 50 * sigma)
        assert crps_normal(np.array(residual), np.array(sigma)) == pytest.approx(below + above, rel=1e-6)


def test_fit_recovers_an_underdispersed_spread():
    """Errors drawn with sigma = sqrt((2 spread)^2 + 0.05^2): the fit finds about that."""
    rng = np.random.default_rng(0)
    spread = rng.uniform(0.01, 0.1, 40_000)
    residual = rng.normal(0, np.sqrt((2 * spread) ** 2 + 0.05**2))
    fitted = fit_spread(residual, spread)
    assert abs(fitted["scale"] - 2.0) <= 0.2 and abs(fitted["floor"] - 0.05) <= 0.01
    assert fitted["crps"] < fitted["crps_raw_spread"]
    np.testing.assert_allclose(
        predictive_std(spread, fitted), np.sqrt((fitted["scale"] * spread) ** 2 + fitted["floor"] ** 2)
    )
    np.testing.assert_array_equal(predictive_std(spread, None), spread)
    with pytest.raises(ValueError, match="at least 100"):
        fit_spread(residual[:10], spread[:10])
    with pytest.raises(ValueError, match="finite"):
        fit_spread(np.r_[residual[:200], np.nan], np.r_[spread[:200], 0.1])


def test_calibrate_command_writes_the_card(tmp_path, data_dir, capsys):
    """A small ensemble trained on 400 rows, calibrated on 300 rows it never saw (the shipped
    default is trained on train + val: no rows of the shared data are held out from it)."""
    model = tmp_path / "model"
    lines = (data_dir / "mp_e_form" / "train.csv").read_text().splitlines()
    (tmp_path / "train.csv").write_text("\n".join(lines[:401]) + "\n")
    assert (
        main(
            [
                "train",
                "--train",
                str(tmp_path / "train.csv"),
                "--arch",
                "irnet17",
                "--features",
                "magpie145",
                "--members",
                "3",
                "--epochs",
                "4",
                "--batch-size",
                "64",
                "--out",
                str(model),
                "--quiet",
            ]
        )
        == 0
    )
    card = json.loads((model / "card.json").read_text())
    card.pop("uncertainty", None)
    (model / "card.json").write_text(json.dumps(card))
    data = tmp_path / "held_out.csv"
    data.write_text("\n".join((data_dir / "mp_e_form" / "val.csv").read_text().splitlines()[:601]) + "\n")
    assert main(["calibrate", "--model", str(model), "--data", str(data), "--rows", "odd"]) == 0
    written = json.loads((model / "card.json").read_text())["uncertainty"]
    assert written["n"] == 300 and written["rows"] == "odd" and written["crps"] <= written["crps_raw_spread"]
    assert written["scale"] > 1  # the members disagree less than they err
    assert "held_out.csv, odd rows) for `p_below_known_hull`" in (model / "MODEL_CARD.md").read_text()
    assert "mean CRPS" in capsys.readouterr().out
