"""CSV tables of a run: the same numbers as pandas writes them, complete or absent."""

import numpy as np
import pandas as pd
import pytest

from screening.tabular_io import write_csv_atomic


def test_a_csv_reads_back_exactly_as_pandas_own_would(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "rank": np.arange(1, 201),
            "formula": [f"Li{i}O" for i in range(200)],
            "decomposition": ['Li2O:0.5 + "O":0.5, said he'] * 200,  # commas and quotes
            "e": rng.normal(size=200) / 3,
            "tiny": rng.normal(size=200) * 1e-300,
            "missing": [np.nan, 1.5] * 100,
            "flag": [True, False] * 100,
        }
    )
    write_csv_atomic(frame, tmp_path / "ours.csv")
    frame.to_csv(tmp_path / "pandas.csv", index=False)
    ours, theirs = (pd.read_csv(tmp_path / n, float_precision="round_trip") for n in ("ours.csv", "pandas.csv"))
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
    pd.testing.assert_frame_equal(ours, frame, check_exact=True)
    assert not list(tmp_path.glob(".*"))  # no temporary file left

    write_csv_atomic(frame.head(0), tmp_path / "empty.csv")  # no rows: the header
    assert (tmp_path / "empty.csv").read_text().strip() == ",".join(frame.columns)


def test_a_csv_that_fails_to_be_written_leaves_the_previous_one_and_no_temporary_file(tmp_path, monkeypatch):
    import os

    (tmp_path / "top.csv").write_text("the previous table\n")

    def interrupted(src, dst):
        assert os.path.getsize(src) > 0  # the new table was written, beside the old one
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_csv_atomic(pd.DataFrame({"x": [1.0, 2.0]}), tmp_path / "top.csv")
    assert (tmp_path / "top.csv").read_text() == "the previous table\n" and not list(tmp_path.glob(".*"))
