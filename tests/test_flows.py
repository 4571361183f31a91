import pandas as pd
import pytest
from prefect.testing.utilities import prefect_test_harness

from flows.featurize_dataset import featurize, featurize_dataset


@pytest.fixture(scope="session")
def prefect_api():
    with prefect_test_harness(server_startup_timeout=120):
        yield


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
