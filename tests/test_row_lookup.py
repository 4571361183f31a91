"""Bulk lookups of integer rows: the known-composition filter of every screened chunk."""

from collections import Counter

import numpy as np
import pandas as pd
import pytest

import screening.row_lookup as row_lookup
from screening.composition import parse_formulas
from screening.enumerate import space
from screening.row_lookup import KnownCompositions, RowCounter, RowSet, composition_rows


def test_composition_rows_identify_reduced_compositions_whatever_the_order():
    batch, _ = parse_formulas(["Fe2O3", "Fe4O6", "O3Fe2", "Fe3O4", "Li0.333333O0.666667", "LiO2", "Fe"])
    rows = composition_rows(batch)
    assert rows.shape == (7, 10)
    assert (rows[0] == rows[1]).all() and (rows[0] == rows[2]).all()
    assert not (rows[0] == rows[3]).all()
    assert (rows[4] == rows[5]).all()  # written to 6 digits is the same compound
    assert rows[6].tolist() == [26, 0, 0, 0, 0, 1_000_000, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="more than 1 elements"):
        composition_rows(batch, width=1)


def test_known_compositions_agree_with_string_keys_on_real_data(data_dir):
    """Every candidate of a real space (and every validation formula) is called known exactly
    when its canonical string key is among the training table's keys."""
    known, _ = parse_formulas(pd.read_csv(data_dir / "mp_e_form" / "train.csv")["formula"].tolist())
    keys = set(known.composition_keys())
    lookup = KnownCompositions(known)
    chunk = next(space(["Li", "Mn", "Fe", "O", "Si"], max_arity=4).chunks(10**6))
    val, _ = parse_formulas(pd.read_csv(data_dir / "mp_e_form" / "val.csv")["formula"].tolist())
    for batch in (chunk.batch, val, known.select(np.arange(0, len(known), 7))):
        expected = np.array([k in keys for k in batch.composition_keys()])
        found = lookup.contains(batch)
        assert (found == expected).all()
    assert found.all()  # known compounds are known
    assert 50 < lookup.contains(chunk.batch).sum() < len(chunk)


def test_row_set_is_exact_even_when_every_hash_collides(monkeypatch):
    rng = np.random.default_rng(0)
    known = rng.integers(0, 5, size=(200, 3))
    query = rng.integers(0, 5, size=(300, 3))
    expected = np.array([tuple(q) in set(map(tuple, known.tolist())) for q in query.tolist()])
    assert (RowSet(known).contains(query) == expected).all()
    monkeypatch.setattr(row_lookup, "hash_rows", lambda a: np.zeros(len(a), np.uint64))
    assert (RowSet(known).contains(query) == expected).all()
    assert (RowSet(known[:0]).contains(query) == False).all()  # noqa: E712
    with pytest.raises(ValueError, match="width 2"):
        RowSet(known).contains(query[:, :2])


def test_row_counter_counts_equal_rows():
    rng = np.random.default_rng(1)
    known = rng.integers(0, 4, size=(500, 2))
    query = rng.integers(0, 5, size=(100, 2))
    counts = Counter(map(tuple, known.tolist()))
    assert RowCounter(known)(query).tolist() == [counts.get(tuple(q), 0) for q in query.tolist()]
    assert RowCounter(known[:0])(query).tolist() == [0] * 100


def test_wider_candidates_than_any_known_compound_are_unknown():
    known, _ = parse_formulas(["LiFeO2", "Fe2O3"])
    lookup = KnownCompositions(known)
    batch, _ = parse_formulas(["LiNaKRbCsO", "Fe4O6", "FeO"])
    assert lookup.contains(batch).tolist() == [False, True, False]
