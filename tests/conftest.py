import warnings

import numpy as np
import pytest

from screening.datasets import load_reference, shared_data_dir

ALL_SPLITS = [("mp_e_form", "train"), ("mp_e_form", "val"), ("oqmd_hf", "train"),
              ("mp_e_hull", "train"), ("mp_e_hull", "val")]  # fmt: skip


def pytest_configure(config):
    warnings.filterwarnings("ignore", category=UserWarning, module="pymatgen")


@pytest.fixture(scope="session")
def data_dir():
    path = shared_data_dir()
    if not path.exists():
        pytest.fail(f"reference data not found at {path}; set SCREENING_DATA_DIR")
    return path


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
    edge = ["Cd1", "O2", "Fe", "NaN", "Li0.5CoO2", "Ca3(PO4)2", "CdH8(NO5)2", "Mg17(As3O16)2",
            "C6H8O7", "C2H6ClBrIS", "XeF4", "HeO", "Pu2O3", "Na1Cl1", "K0.333Fe0.667O",
            "Mn2.5Ni0.5O4Li", "Ba1Ti1O3", "H12C6O6N2S3P1"]  # fmt: skip
    return edge + picks


import os  # noqa: E402

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
