import pytest

from screening.datasets import load_reference, manifest, reference_path, verify_reference_data


def test_shared_data_matches_manifest(data_dir):
    assert verify_reference_data() == []


def test_load_reference_keeps_sodium_nitride(data_dir):
    frame = load_reference("mp_e_hull", "train")
    assert len(frame) == manifest()["files"]["mp_e_hull/train.csv"]["rows"]
    assert "NaN" in set(frame["formula"])
    assert frame["target"].notna().all()


def test_unknown_dataset_is_named():
    import pytest

    with pytest.raises(KeyError, match="no reference dataset 'nope/train.csv'"):
        reference_path("nope")


def test_bad_tables_are_one_error_naming_the_file_and_values_are_shown_as_written(tmp_path):
    from screening.datasets import read_formula_table
    from screening.screen_plan import read_reference

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.csv is empty"):
        read_formula_table(empty)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("formula,target\nFe2O3,-1.7\nCaf\xe9O,-1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.csv is not UTF-8 text \(line 3\)"):
        read_formula_table(latin)
    with pytest.raises(ValueError, match="is a folder"):
        read_formula_table(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("formula,target\nFe2O3,abc\nLi2O,-2.0\n")
    _, energy, rejected = read_reference([str(bad)])
    assert rejected["reason"].tolist() == ["target 'abc' is not a finite number"] and len(energy) == 1
