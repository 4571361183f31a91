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
