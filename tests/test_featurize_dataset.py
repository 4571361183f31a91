import json

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from screening import featurize_dataset as fd
from screening.cli import main
from screening.featurize_dataset import featurize_file
from screening.featurizers import Magpie145

BAD = {7: "Xx2O", 1500: "", 2001: "O0", 2998: "Fe(O"}


@pytest.fixture(scope="module")
def input_csv(tmp_path_factory, all_formulas):
    formulas = list(all_formulas[:3000])
    for row, formula in BAD.items():
        formulas[row] = formula
    path = tmp_path_factory.mktemp("input") / "formulas.csv"
    pd.DataFrame({"formula": formulas, "target": np.arange(3000.0)}).to_csv(path, index=False)
    return path


def read_features(out):
    return pd.read_parquet(out / "features")


def test_chunked_dataset_accounts_for_every_row(input_csv, tmp_path):
    out = tmp_path / "ds"
    summary = featurize_file(str(input_csv), str(out), chunk_size=700, workers=0)
    assert (summary.rows_in, summary.rows_written, summary.rows_rejected) == (3000, 2996, 4)
    assert summary.chunks == 5 and summary.chunks_skipped == 0
    assert sorted(p.name for p in (out / "features").iterdir()) == [fd.part_name(i) for i in range(5)]

    features = read_features(out)
    assert list(features.columns) == ["formula"] + Magpie145().feature_labels()
    assert all(features[c].dtype == np.float32 for c in features.columns[1:])
    source = pd.read_csv(input_csv, keep_default_na=False)
    expected_formulas = source["formula"].drop(index=list(BAD)).tolist()
    assert features["formula"].tolist() == expected_formulas
    direct = Magpie145().featurize_formulas(expected_formulas).values.astype(np.float32)
    np.testing.assert_array_equal(features.iloc[:, 1:].to_numpy(), direct)

    rejected = pd.read_parquet(out / "rejected").sort_values("row")
    assert rejected["row"].tolist() == sorted(BAD)
    assert rejected["formula"].tolist() == [BAD[r] for r in sorted(BAD)]
    assert "unknown element 'Xx'" in rejected["reason"].iloc[0]

    meta = json.loads(pq.read_schema(out / "features" / fd.part_name(0)).metadata[b"screening"])
    assert meta["featurizer"] == "magpie145" and meta["code_version"]
    assert json.loads((out / fd.SUMMARY).read_text())["rows_in"] == 3000


def test_parquet_input_gives_same_chunks(input_csv, tmp_path):
    source = pd.read_csv(input_csv, keep_default_na=False)
    parquet = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(source), parquet, row_group_size=333)  # misaligned groups
    featurize_file(str(input_csv), str(tmp_path / "a"), chunk_size=700, workers=0)
    featurize_file(str(parquet), str(tmp_path / "b"), chunk_size=700, workers=0)
    for i in range(5):
        a = pd.read_parquet(tmp_path / "a" / "features" / fd.part_name(i))
        b = pd.read_parquet(tmp_path / "b" / "features" / fd.part_name(i))
        pd.testing.assert_frame_equal(a, b)


def test_rerun_skips_complete_chunks_and_redoes_interrupted_ones(input_csv, tmp_path, monkeypatch):
    clean = tmp_path / "clean"
    featurize_file(str(input_csv), str(clean), chunk_size=700, workers=0)

    out = tmp_path / "crashy"
    real_write = fd.write_parquet_atomic
    calls = {"n": 0}

    def crash_on_third_features_file(table, path, **options):
        if "features" in str(path):
            calls["n"] += 1
            if calls["n"] == 3:
                with open(f"{path}.half.tmp", "wb") as f:  # what a killed writer leaves behind
                    f.write(b"PAR1 half")
                raise OSError("disk vanished")
        return real_write(table, path, **options)

    monkeypatch.setattr(fd, "write_parquet_atomic", crash_on_third_features_file)
    with pytest.raises(OSError, match="disk vanished"):
        featurize_file(str(input_csv), str(out), chunk_size=700, workers=0)
    monkeypatch.setattr(fd, "write_parquet_atomic", real_write)
    assert len(list((out / "features").glob("*.parquet"))) == 2  # nothing half-written visible

    summary = featurize_file(str(input_csv), str(out), chunk_size=700, workers=0)
    assert summary.chunks_skipped == 2 and summary.rows_in == 3000
    assert not list(out.rglob("*.tmp"))
    pd.testing.assert_frame_equal(read_features(out), read_features(clean))
    pd.testing.assert_frame_equal(pd.read_parquet(out / "rejected"), pd.read_parquet(clean / "rejected"))


def test_changed_parameters_need_overwrite(input_csv, tmp_path):
    out = tmp_path / "ds"
    featurize_file(str(input_csv), str(out), chunk_size=700, workers=0)
    with pytest.raises(FileExistsError, match="different chunk_size"):
        featurize_file(str(input_csv), str(out), chunk_size=500, workers=0)
    summary = featurize_file(str(input_csv), str(out), chunk_size=500, workers=0, overwrite=True)
    assert summary.chunks == 6 and summary.chunks_skipped == 0
    assert len(list((out / "features").iterdir())) == 6
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a screening dataset"):
        featurize_file(str(input_csv), str(tmp_path / "other"), workers=0)


def test_dask_local_cluster_matches_in_process(input_csv, tmp_path):
    featurize_file(str(input_csv), str(tmp_path / "serial"), featurizer="elemfrac86", chunk_size=400, workers=0)
    summary = featurize_file(str(input_csv), str(tmp_path / "dask"), featurizer="elemfrac86", chunk_size=400, workers=2)
    assert summary.chunks == 8
    pd.testing.assert_frame_equal(read_features(tmp_path / "dask"), read_features(tmp_path / "serial"))


def test_outputs_read_back_with_duckdb(input_csv, tmp_path):
    out = tmp_path / "ds"
    featurize_file(str(input_csv), str(out), featurizer="elemfrac86", chunk_size=1000, workers=0)
    con = duckdb.connect()
    n, li = con.execute(f"select count(*), sum(\"Li\" > 0) from '{out}/features/*.parquet'").fetchone()
    assert n == 2996 and li > 0
    reasons = con.execute(f"select reason from '{out}/rejected/*.parquet' order by row").fetchall()
    assert len(reasons) == 4


def test_cli_featurize_and_errors(input_csv, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "featurize",
            str(input_csv),
            "--featurizer",
            "elemfrac86",
            "--out",
            str(out),
            "--chunk-size",
            "1000",
            "--workers",
            "0",
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "2,996 written, 4 rejected" in printed and str(out / "rejected") in printed

    assert main(["featurize", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "input file not found" in capsys.readouterr().err
    assert main(["featurize", str(input_csv), "--featurizer", "magpie", "--out", str(tmp_path / "y")]) == 2
    assert "unknown featurizer 'magpie'" in capsys.readouterr().err
    assert main(["featurize", str(input_csv), "--featurizer", "columns:foo", "--out", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err
    assert "no column(s) 'foo'" in err and len(err.strip().splitlines()) == 1


def test_stream_of_compositions(tmp_path):
    from screening.featurize_dataset import featurize_chunks

    def stream():
        for i in range(3):
            yield pd.DataFrame({"formula": [f"Li{i + 1}O", f"Na{i + 1}Cl", "Qq"]})

    summary = featurize_chunks(stream(), str(tmp_path / "s"), "elemfrac86", source="li-na test", workers=0)
    assert (summary.chunks, summary.rows_written, summary.rows_rejected) == (3, 6, 3)
    assert pd.read_parquet(tmp_path / "s" / "rejected")["row"].tolist() == [2, 5, 8]
    again = featurize_chunks(stream(), str(tmp_path / "s"), "elemfrac86", source="li-na test", workers=0)
    assert again.chunks_skipped == 3


def test_any_fsspec_location(input_csv):
    import fsspec

    url = "memory://screening-test/ds"
    summary = featurize_file(str(input_csv), url, featurizer="elemfrac86", chunk_size=1000, workers=0)
    assert summary.rows_written == 2996 and summary.out_dir == url
    fs = fsspec.filesystem("memory")
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls("/screening-test/ds/features", detail=False)) == [
        fd.part_name(i) for i in range(3)
    ]
    with fs.open("/screening-test/ds/features/" + fd.part_name(0), "rb") as f:
        assert len(pq.read_table(f)) == 999  # row 7 (Xx2O) is rejected
    again = featurize_file(str(input_csv), url, featurizer="elemfrac86", chunk_size=1000, workers=0)
    assert again.chunks_skipped == 3
