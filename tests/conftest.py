import warnings

import numpy as np
import pytest

from screening.datasets import load_reference, shared_data_dir

ALL_SPLITS = [
    ("mp_e_form", "train"),
    ("mp_e_form", "val"),
    ("oqmd_hf", "train"),
    ("mp_e_hull", "train"),
    ("mp_e_hull", "val"),
]


def pytest_configure(config):
    warnings.filterwarnings("ignore", category=UserWarning, module="pymatgen")


@pytest.fixture(scope="session")
def data_dir():
    path = shared_data_dir()
    if not path.exists():
        pytest.fail(f"reference data not found at {path}; set SCREENING_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def mp_e_form(data_dir):
    """mp_e_form train + val parsed: ``(CompositionBatch, formation energies)``."""
    import pandas as pd

    from screening.composition import parse_formulas

    frame = pd.concat([load_reference("mp_e_form", "train"), load_reference("mp_e_form", "val")])
    batch, rejected = parse_formulas(frame["formula"].tolist())
    assert not rejected
    return batch, frame["target"].to_numpy()


@pytest.fixture(scope="session")
def all_formulas(data_dir) -> list[str]:
    formulas: list[str] = []
    for name, split in ALL_SPLITS:
        formulas += load_reference(name, split)["formula"].tolist()
    return formulas


@pytest.fixture(scope="session")
def formula_sample(all_formulas) -> list[str]:
    """A fixed random sample of real formulas, plus cases that exercise every code path."""
    rng = np.random.default_rng(20261123)
    picks = [all_formulas[i] for i in rng.choice(len(all_formulas), 600, replace=False)]
    edge = [
        "Cd1",
        "O2",
        "Fe",
        "NaN",
        "Li0.5CoO2",
        "Ca3(PO4)2",
        "CdH8(NO5)2",
        "Mg17(As3O16)2",
        "C6H8O7",
        "C2H6ClBrIS",
        "XeF4",
        "HeO",
        "Pu2O3",
        "Na1Cl1",
        "K0.333Fe0.667O",
        "Mn2.5Ni0.5O4Li",
        "Ba1Ti1O3",
        "H12C6O6N2S3P1",
    ]
    return edge + picks


import os  # noqa: E402

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


# --- a screening run big enough to interrupt (5,720 candidates in 58 chunks), shared by the
# resilience and Dask-cluster tests, and the single-machine run they must reproduce.
PROJECT_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
LONG_RUN = {"elements": ["Li", "Mn", "Fe", "Co", "Ni", "O"], "max_arity": 4, "max_atoms": 10, "chunk_size": 100}
LONG_RUN_CANDIDATES = 15 * 31 + 20 * 109 + 15 * 205


@pytest.fixture(scope="session")
def long_run_reference(data_dir):
    return [str(data_dir / "mp_e_form" / "train.csv")]


@pytest.fixture(scope="session")
def single_machine_run(tmp_path_factory, long_run_reference):
    """The long run, uninterrupted, in this process (no Dask)."""
    from screening.screen import ScreenRequest, screen

    out = tmp_path_factory.mktemp("single") / "run"
    request = ScreenRequest(
        model=str(PROJECT_ROOT / "data/models/default"), out=str(out), reference=long_run_reference, **LONG_RUN
    )
    summary = screen(request, progress=False, workers=0)
    assert summary["candidates"] == LONG_RUN_CANDIDATES
    return out


def assert_same_screening(run, expected):
    """Same ranked rows and values, no duplicates, no temporary files left behind."""
    import pandas as pd

    got, want = pd.read_parquet(run / "ranked.parquet"), pd.read_parquet(expected / "ranked.parquet")
    assert got["candidate_id"].is_unique
    pd.testing.assert_frame_equal(got, want)
    scored = pd.read_parquet(run / "scored").sort_values("candidate_id", ignore_index=True)
    pd.testing.assert_frame_equal(
        scored, pd.read_parquet(expected / "scored").sort_values("candidate_id", ignore_index=True)
    )
    assert not list(run.rglob("*.tmp"))


@pytest.fixture(scope="session")
def prefect_api():
    """One embedded Prefect API for the whole session (~15 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def reference_slices(folder, train_rows: int, val_rows: int, source: str = "mp_e_form"):
    """The first rows of a shared table's train and val splits, as ``train.csv`` / ``val.csv`` in
    ``folder`` (small tables the training tests fit in seconds)."""
    train, val = folder / "train.csv", folder / "val.csv"
    load_reference(source, "train").iloc[:train_rows].to_csv(train, index=False)
    load_reference(source, "val").iloc[:val_rows].to_csv(val, index=False)
    return train, val


def screen_args(model, out, *extra: str, elements: str = "Li,O", max_arity: int = 2) -> list[str]:
    """``screening screen`` arguments for a small space (``extra``: --reference CSV, --no-reference, ...)."""
    return [
        "screen",
        "--elements",
        elements,
        "--max-arity",
        str(max_arity),
        "--model",
        str(model),
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


TWIN_RECIPE = ["--arch", "elemnet", "--features", "elemfrac86", "--epochs", "2", "--batch-size", "256", "--quiet"]


@pytest.fixture(scope="session")
def twin(tmp_path_factory, data_dir):
    """A small model validated on ``val.csv`` with its stability model fitted on that table's
    screening situation (train.csv known): 3,000 and 600 rows of mp_e_form, ~20 s on 2 cores."""
    from screening.cli import main

    root = tmp_path_factory.mktemp("twin")
    known, hidden = reference_slices(root, 3000, 600)
    out = root / "twin"
    args = ["train", "--train", str(known), "--val", str(hidden), "--members", "2", "--ranking", "--out", str(out)]
    assert main([*args, *TWIN_RECIPE]) == 0
    return root, out


@pytest.fixture(scope="session")
def weak(twin):
    """The twin's recipe for one epoch at a learning rate 100x smaller: a model that is clearly worse,
    trained and ranked on the same tables."""
    from screening.cli import main

    root, _ = twin
    out = root / "weak"
    args = ["train", "--train", str(root / "train.csv"), "--val", str(root / "val.csv"), "--members", "2"]
    assert main([*args, "--ranking", "--out", str(out), *TWIN_RECIPE, "--epochs", "1", "--lr", "1e-5"]) == 0
    return out


def catalog_rows(root):
    import duckdb

    con = duckdb.connect(str(root / "catalog.duckdb"), read_only=True)
    frame = con.execute("SELECT * EXCLUDE (run, screened_at) FROM candidates ORDER BY space, candidate_id").df()
    con.close()
    return frame


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    """An untrained 2-member ensemble on element fractions: scores are arbitrary but real."""
    import torch

    from screening.models import Ensemble, StackedNet

    net = StackedNet("irnet17", 86, 2)
    net.reset_parameters([7, 8])
    card = {
        "architecture": "irnet17",
        "d_in": 86,
        "members": 2,
        "featurizer": "elemfrac86",
        "training_element_counts": {"Li": 1000, "Mn": 900, "O": 5000, "Fe": 10},
    }
    directory = tmp_path_factory.mktemp("model")
    Ensemble(net, torch.zeros(86), torch.ones(86) * 0.1, -1.0, 0.05, card).save(directory)
    return str(directory)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Li-Mn-O known compounds, with an unknown element (Xx) and a NaN energy among them."""
    import pandas as pd

    path = tmp_path_factory.mktemp("ref") / "known.csv"
    pd.DataFrame(
        {
            "formula": ["Li4O2", "LiO2", "MnO", "Mn2O3", "MnO2", "LiMnO2", "Li2O", "Xx", "FeO"],
            "target": [-2.07, -1.0, -1.96, -2.0, -1.8, -1.9, -1.5, -1.0, float("nan")],
        }
    ).to_csv(path, index=False)
    return str(path)


def li_mn_o(model, reference: str, out, chunk_size: int):
    """The Li-Mn-O binaries on the CPU, in chunks of ``chunk_size``."""
    from screening.request import ScreenRequest

    request = dict(elements=["Li", "Mn", "O"], max_arity=2, reference=[reference], chunk_size=chunk_size, device="cpu")
    return ScreenRequest(model=str(model), out=str(out), **request)


def classifier_split_inside_rounding():
    """A histogram GBM on (share, distance, plain) whose first two features carry much of their data
    at twins of one value computed two ways (0.05 and 0.05 - 1 ulp; 0 +- 1e-16), and splits there."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    n = 20_000  # many distinct values (thresholds at quantiles), and much mass at one value's two roundings
    twins = np.where(rng.random(n) < 0.5, 0.05, np.nextafter(0.05, 0.0))
    share = np.where(rng.random(n) < 0.5, twins, rng.uniform(0, 0.2, n))
    distance = np.where(rng.random(n) < 0.5, rng.choice([0.0, 2.2e-16, -4.4e-16], n), rng.uniform(0, 0.3, n))
    plain = rng.normal(size=n)
    y = (share == 0.05) ^ (distance > 0) ^ (plain > 0)
    return HistGradientBoostingClassifier(max_iter=5).fit(np.column_stack([share, distance, plain]), y)
