import warnings

import numpy as np
import pandas as pd
import pytest
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition

import screening.hull as hull_module
from screening.cli import main
from screening.composition import parse_formulas
from screening.datasets import load_reference
from screening.elements import Z_OF
from screening.hull import hull_distances

SYSTEMS = [("Na", "Cl"), ("Li", "Fe", "O"), ("Ba", "Ti", "O"), ("Li", "Mn", "Co", "Ni", "O"),
           ("Cs", "Pb", "I", "Br", "Cl", "O", "H")]  # fmt: skip


@pytest.fixture(scope="module")
def mp_e_form(data_dir):
    frame = pd.concat([load_reference("mp_e_form", "train"), load_reference("mp_e_form", "val")])
    batch, rejected = parse_formulas(frame["formula"].tolist())
    assert not rejected
    return batch, frame["target"].to_numpy()


def pymatgen_reference(formulas, energies, elements):
    entries = [PDEntry(Composition(f), e * Composition(f).num_atoms) for f, e in zip(formulas, energies)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        diagram = PhaseDiagram(entries + [PDEntry(Composition(s), 0.0) for s in elements])
        results = [diagram.get_decomp_and_e_above_hull(e, allow_negative=True) for e in entries]
    return np.array([r[1] for r in results]), [{d.composition.reduced_formula for d in r[0]} for r in results]


@pytest.mark.parametrize("system", SYSTEMS, ids="-".join)
@pytest.mark.parametrize("qhull_max", [6, 1])  # 1: every system through the linear programme
def test_equals_pymatgen_on_real_systems(mp_e_form, system, qhull_max, monkeypatch):
    monkeypatch.setattr(hull_module, "QHULL_MAX_ELEMENTS", qhull_max)
    batch, energies = mp_e_form
    allowed = {Z_OF[s] for s in system}
    rows = np.array([set(z[z > 0].tolist()) <= allowed for z in batch.z])
    sub, e = batch.select(rows), energies[rows]
    result = hull_distances(sub, e)
    expected, decompositions = pymatgen_reference(sub.formula, e, system)
    np.testing.assert_allclose(result.e_above_hull, expected, atol=1e-9)
    ours = [{Composition(p.split(":")[0]).reduced_formula for p in d.split(" + ")} for d in result.decomposition_strings(sub.formula)]
    assert ours == decompositions
    assert result.stable.sum() >= 1 and (~result.stable).sum() >= 1


def test_toy_binary_and_decomposition():
    batch, _ = parse_formulas(["NaCl", "Na2Cl", "NaCl3", "Na3Cl", "NaCl"])
    result = hull_distances(batch, np.array([-2.0, -0.5, -0.3, -1.6, -1.9]))
    np.testing.assert_allclose(result.e_above_hull, [0, 1.2333333333, 0.7, 0, 0.1], atol=1e-9)
    assert result.stable.tolist() == [True, False, False, True, False]
    assert result.decomposition_strings(batch.formula)[2] == "NaCl:0.5 + Cl:0.5"
    assert result.decomposition_strings(batch.formula)[4] == "NaCl:1"


def test_bad_energies_are_named():
    batch, _ = parse_formulas(["NaCl", "KBr"])
    with pytest.raises(ValueError, match="row 1 \\(KBr\\) is nan"):
        hull_distances(batch, np.array([-1.0, np.nan]))
    with pytest.raises(ValueError, match="one energy per composition"):
        hull_distances(batch, np.array([-1.0]))


def test_hull_cli(tmp_path, capsys):
    source = tmp_path / "e.csv"
    pd.DataFrame({"formula": ["NaCl", "Na3Cl", "NaCl3", "Qq", "KCl"], "target": [-2.0, -1.6, -0.3, -1.0, "x"]}).to_csv(source, index=False)
    assert main(["hull", "--data", str(source), "--out", str(tmp_path / "h.parquet")]) == 0
    out = pd.read_parquet(tmp_path / "h.parquet")
    assert out["formula"].tolist() == ["NaCl", "Na3Cl", "NaCl3"]
    assert out["chemsys"].tolist() == ["Cl-Na"] * 3 and out["stable"].tolist() == [True, True, False]
    assert "2 rows rejected" in capsys.readouterr().out
    rejected = pd.read_csv(tmp_path / "h.rejected.csv")
    assert rejected["formula"].tolist() == ["Qq", "KCl"]


def test_flat_simplices_from_triangulation_are_skipped():
    """A real quaternary (known compounds + 205 bf16-scored candidates from the 1M benchmark)
    where qhull's triangulation leaves flat lower simplices: their barycentric systems are
    singular. The hull must still equal the linear programme's, with exact decompositions."""
    from pathlib import Path

    from screening.hull import _linprog, _qhull

    case = np.load(Path(__file__).parent / "data" / "flat_simplices_quaternary.npz")
    comp, e, query = case["comp"], case["e"], case["query"]
    energy, decomposition = _qhull(comp, e, query)
    expected, _ = _linprog(comp, e, query)
    np.testing.assert_allclose(energy, expected, atol=1e-9)
    for (rows, weights), q, h in zip(decomposition, query, energy):
        assert (weights > 0).all() and abs(weights.sum() - 1) < 1e-12
        np.testing.assert_allclose(weights @ comp[rows], q, atol=1e-12)
        assert abs(weights @ e[rows] - h) < 1e-9
