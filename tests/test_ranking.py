"""The out-of-core ranking equals the in-memory definition: the hull of every known compound and
every candidate together, and a sort of all candidates by (distance to known hull, -P, id)."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from screening.composition import CompositionBatch, parse_formulas
from screening.datasets import load_reference
from screening.enumerate import Grid, space
from screening.hull import ReferenceHull, hull_distances, restrict
from screening.ranking import RANK_SCRATCH, Col, rank, read_ranking
from screening.tabular_io import write_parquet_atomic

ELEMENTS = ["Li", "Fe", "Mn", "O"]


@pytest.fixture(scope="module")
def known(data_dir):
    frame = load_reference("mp_e_form", "train")
    batch, _ = parse_formulas(frame["formula"].tolist())
    from screening.elements import Z_OF

    return restrict(batch, frame["target"].to_numpy()[batch.index], {Z_OF[s] for s in ELEMENTS})


def write_scored_parts(out, known_batch, known_e, seed=0):
    """Candidates of Li-Fe-Mn-O with made-up predictions scattered around the known hull, in
    three parts, as the scoring step writes them (the columns the ranking reads)."""
    rng = np.random.default_rng(seed)
    chunks = list(space(ELEMENTS, max_arity=4, grid=Grid(max_atoms=6)).chunks(chunk_size=60))  # 157 candidates
    hull = ReferenceHull(known_batch, known_e)
    frames = []
    (out / "scored").mkdir()
    for index, chunk in enumerate(chunks[:3]):
        batch = chunk.batch
        hull_e, _ = hull.energy_at(batch)
        pred = hull_e + rng.normal(0.05, 0.1, len(batch))
        pred[::7] = np.round(pred[::7], 1)  # ties in the sort key
        std = rng.uniform(0.02, 0.1, len(batch))
        frame = pd.DataFrame(
            {
                Col.candidate_id: chunk.candidate_id,
                Col.formula: batch.formula,
                Col.chemsys: chunk.chemsys,
                Col.e_form_pred: pred,
                Col.e_form_std: std,
                Col.e_above_known_hull: np.round(pred - hull_e, 1),
                Col.p_below_known_hull: np.round(rng.uniform(0, 1, len(batch)), 1),
            }
        )
        write_parquet_atomic(
            pa.Table.from_pandas(frame, preserve_index=False), str(out / "scored" / f"part-{index:05d}.parquet")
        )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_ranking_equals_the_in_memory_definition(known, tmp_path):
    known_batch, known_e = known
    tmp_path = tmp_path / "a run's folder"  # a quote in the path must not break the SQL
    tmp_path.mkdir()
    scored = write_scored_parts(tmp_path, known_batch, known_e)
    ranking = rank(
        tmp_path, known_batch, known_e, {"model": "test's"}, top_k=20, per_system=3, systems=2, memory_limit="100MB"
    )
    ranked = pd.read_parquet(tmp_path / "ranked.parquet")

    cand, _ = parse_formulas(scored[Col.formula].tolist())
    whole = hull_distances(
        CompositionBatch.concat(known_batch, cand), np.concatenate([known_e, scored[Col.e_form_pred].to_numpy()])
    )
    expected = scored.assign(
        **{
            Col.e_above_combined_hull: whole.e_above_hull[len(known_batch) :],
            Col.stable_combined: whole.stable[len(known_batch) :],
        }
    )
    expected = expected.sort_values(
        [Col.e_above_known_hull, Col.p_below_known_hull, Col.candidate_id], ascending=[True, False, True], kind="stable"
    )
    assert ranked[Col.candidate_id].tolist() == expected[Col.candidate_id].tolist()
    assert ranked[Col.rank].tolist() == list(range(1, len(scored) + 1))
    np.testing.assert_allclose(ranked[Col.e_above_combined_hull], expected[Col.e_above_combined_hull], atol=1e-9)
    assert ranked[Col.stable_combined].tolist() == expected[Col.stable_combined].tolist()
    on_hull = ranked[Col.stable_combined].to_numpy()
    assert (ranked[Col.e_above_combined_hull].to_numpy()[on_hull] == 0.0).all()  # exactly, not +-1e-15
    assert expected[Col.stable_combined].sum() > 0 and (expected[Col.e_above_known_hull] < 0).sum() > 0
    assert ranked[Col.rank_in_system].tolist() == (ranked.groupby(Col.chemsys).cumcount() + 1).tolist()
    part_of = {
        c: i
        for i, p in enumerate(sorted((tmp_path / "scored").glob("*.parquet")))
        for c in pd.read_parquet(p)[Col.candidate_id]
    }
    parts_of = scored.assign(part=scored[Col.candidate_id].map(part_of)).groupby(Col.chemsys)["part"].nunique()
    assert (parts_of > 1).sum() >= 2  # systems split between parts are numbered across them
    assert list(ranked.columns) == [
        Col.rank,
        *scored.columns,
        Col.e_above_combined_hull,
        Col.stable_combined,
        Col.rank_in_system,
    ]
    assert json.loads(pq.read_schema(tmp_path / "ranked.parquet").metadata[b"screening"]) == {"model": "test's"}
    assert not (tmp_path / RANK_SCRATCH).exists()

    assert (ranking.total, ranking.below_known_hull) == (len(scored), int((scored[Col.e_above_known_hull] < 0).sum()))
    assert ranking.on_combined_hull == int(expected[Col.stable_combined].sum())
    pd.testing.assert_frame_equal(ranking.top, ranked.head(20), check_dtype=False)
    best = ranked.groupby(Col.chemsys)[Col.rank].min().sort_values()
    assert list(ranking.best_systems) == best.index[:2].tolist()
    for chemsys, frame in ranking.best_systems.items():
        assert frame[Col.candidate_id].tolist() == ranked.loc[ranked[Col.chemsys] == chemsys, Col.candidate_id].tolist()
    assert ranking.by_system[Col.chemsys].drop_duplicates().tolist() == best.index.tolist()
    assert (ranking.by_system[Col.rank_in_system] <= 3).all()
    assert len(ranking.by_system) == int(ranked.groupby(Col.chemsys).size().clip(upper=3).sum())


def test_a_crashed_ranking_is_redone_cleanly(known, tmp_path):
    """Scratch left by a ranking killed midway (and a stale ranked file) do not leak into the
    next ranking, which replaces ranked.parquet atomically."""
    known_batch, known_e = known
    write_scored_parts(tmp_path, known_batch, known_e)
    (tmp_path / RANK_SCRATCH / "combined").mkdir(parents=True)
    pq.write_table(
        pa.table({Col.candidate_id: [0], Col.e_above_combined_hull: [9.9], Col.stable_combined: [False]}),
        tmp_path / RANK_SCRATCH / "combined" / "part-00099.parquet",
    )
    first = rank(tmp_path, known_batch, known_e, {})
    assert (first.top[Col.e_above_combined_hull] < 9).all()
    again = rank(tmp_path, known_batch, known_e, {})
    pd.testing.assert_frame_equal(first.top, again.top)
    assert read_ranking(tmp_path / "ranked.parquet").total == first.total
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ranked.parquet", "scored"]


def test_nothing_to_rank_is_an_error(tmp_path):
    batch, _ = parse_formulas([])
    (tmp_path / "scored").mkdir()
    with pytest.raises(FileNotFoundError, match="no scored parts"):
        rank(tmp_path, batch, np.zeros(0), {})


def test_the_best_systems_are_drawn_while_sorting_with_the_candidates_the_sorted_file_gives(known, tmp_path):
    """rank(while_sorting=...): called, on a thread during the sort, with each best system's
    scored candidates in ranking order, as the sorted file has them; only confirmed results kept."""
    known_batch, known_e = known
    write_scored_parts(tmp_path, known_batch, known_e)
    given = {}

    def record(chemsys, candidates):
        given[chemsys] = candidates
        return f"made {chemsys}"

    ranking = rank(tmp_path, known_batch, known_e, {}, systems=3, while_sorting=record)
    assert list(given) == list(ranking.best_systems) and len(given) == 3
    assert ranking.made_while_sorting == {c: f"made {c}" for c in given}
    for chemsys, frame in ranking.best_systems.items():
        pd.testing.assert_frame_equal(given[chemsys], frame[given[chemsys].columns], check_dtype=False)


def test_a_system_drawn_while_sorting_that_the_sorted_file_does_not_confirm_is_drawn_again(
    known, tmp_path, monkeypatch
):
    import screening.ranking as ranking_module

    known_batch, known_e = known
    write_scored_parts(tmp_path, known_batch, known_e)
    reference = rank(tmp_path, known_batch, known_e, {}, systems=2)
    wrong = next(c for c in ["Fe-O", "Li-O", "Mn-O"] if c not in reference.best_systems)
    best = list(reference.best_systems)

    def guessed(parts, scratch, heads, systems, make):  # one right system with the wrong rows, one wrong system
        return {best[0]: ([-1], make(best[0], None)), wrong: ([], make(wrong, None))}

    monkeypatch.setattr(ranking_module, "_made_early", guessed)
    ranking = rank(tmp_path, known_batch, known_e, {}, systems=2, while_sorting=lambda c, f: c)
    assert ranking.made_while_sorting == {} and list(ranking.best_systems) == best
