"""Hull pictures draw what the tables say: the known hull through the stable known compounds,
every candidate at its predicted energy, the ones below the known hull marked apart."""

import numpy as np
import pandas as pd

import screening.hull_plot as hull_plot
from screening.columns import Col
from screening.composition import parse_formulas


def drawn(monkeypatch, tmp_path, chemsys, ranked, known, energy):
    """The figure hull_picture draws, kept instead of closed."""
    figures = []
    plt = hull_plot._pyplot()
    monkeypatch.setattr(plt, "close", figures.append)
    path = hull_plot.hull_picture(chemsys, ranked, known, energy, tmp_path / "h.png")
    assert path.stat().st_size > 10_000  # a real PNG
    return figures[0].axes[0]


def test_binary_picture_shows_the_known_hull_and_every_candidate(monkeypatch, tmp_path):
    known, _ = parse_formulas(["Li2O", "Li2O2", "LiO3"])
    energy = np.array([-2.0, -1.5, 0.2])  # LiO3 above the hull
    ranked = pd.DataFrame(
        {
            Col.chemsys: ["Li-O"] * 3,
            Col.formula: ["Li3O", "LiO", "LiO2"],
            Col.e_form_pred: [-1.0, -1.9, -0.5],
            Col.e_form_std: [0.05, 0.05, 0.1],
            Col.e_above_known_hull: [0.2, -0.15, 0.3],
        }
    )
    ax = drawn(monkeypatch, tmp_path, "Li-O", ranked, known, energy)
    hull_line = next(line for line in ax.lines if line.get_label() == "hull of known compounds")
    np.testing.assert_allclose(hull_line.get_xdata(), [0, 1 / 3, 0.5, 1])  # Li, Li2O, Li2O2, O
    np.testing.assert_allclose(hull_line.get_ydata(), [0, -2.0, -1.5, 0])
    points = {  # errorbar containers: their first artist is the line of points
        c.get_label(): np.column_stack([c.lines[0].get_xdata(), c.lines[0].get_ydata()]) for c in ax.containers
    }
    np.testing.assert_allclose(points["candidates below known hull"], [[0.5, -1.9]])
    np.testing.assert_allclose(points["candidates (±1 std)"], [[0.25, -1.0], [2 / 3, -0.5]])
    labels = {t.get_text() for t in ax.texts}
    # the stable known compounds (reduced formulas: Li2O2 is LiO) and the candidates are named, not LiO3
    assert {"Li", "O", "Li2O", "LiO", "Li3O", "LiO2"} <= labels and "LiO3" not in labels
