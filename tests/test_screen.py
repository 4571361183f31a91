import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import li_mn_o, screen_args
from scipy.special import ndtr

from screening.cli import main
from screening.screen import ScreenRequest, screen


def test_screen_outputs_and_accounting(toy_model, reference, tmp_path):
    request = ScreenRequest(
        model=toy_model,
        out=str(tmp_path / "run"),
        elements=["Li", "Mn", "O", "Fe"],
        max_arity=3,
        reference=[reference],
        chunk_size=100,
        device="cpu",
    )
    summary = screen(request, progress=False)
    assert summary["candidates"] == 6 * 31 + 4 * 109  # C(4,2) binaries, C(4,3) ternaries
    assert summary["removed"] == {"already known": 6}  # Li2O, LiO2, MnO, Mn2O3, MnO2, LiMnO2
    assert summary["scored"] + summary["rejected"] + 6 == summary["candidates"]
    rejected_ref = pd.read_csv(tmp_path / "run" / "reference_rejected.csv")
    assert rejected_ref["formula"].tolist() == ["Xx", "FeO"]

    ranked = pd.read_parquet(tmp_path / "run" / "ranked.parquet")
    assert len(ranked) == summary["scored"] and ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert ranked["e_above_known_hull"].is_monotonic_increasing
    np.testing.assert_allclose(ranked["e_above_known_hull"], ranked["e_form_pred"] - ranked["known_hull_energy"])
    assert ((ranked["p_below_known_hull"] >= 0) & (ranked["p_below_known_hull"] <= 1)).all()
    np.testing.assert_allclose(
        ranked["p_below_known_hull"], ndtr(-ranked["e_above_known_hull"] / ranked["e_form_std"])
    )  # no calibration
    assert (ranked["e_above_combined_hull"] >= -1e-9).all()
    assert (ranked["e_above_combined_hull"] >= ranked["e_above_known_hull"].clip(upper=0) - 1e-9).all()
    assert ranked.loc[ranked["formula"].str.contains("Fe"), "rare_element"].all()
    li_mn = ranked[ranked["chemsys"] == "Li-Mn-O"]
    assert li_mn["rank_in_system"].tolist() == list(range(1, len(li_mn) + 1))
    assert "Li2O:" in " ".join(ranked["known_decomposition"])  # the known hull, as reduced formulas
    assert "Li4O2" not in " ".join(ranked["known_decomposition"])

    meta = json.loads(pq.read_schema(tmp_path / "run" / "ranked.parquet").metadata[b"screening"])
    assert meta["model_sha256"] and meta["featurizer"] == "elemfrac86" and meta["request"]["max_arity"] == 3
    n, best = (
        duckdb.connect()
        .execute(f"select count(*), min(e_above_known_hull) from '{tmp_path}/run/scored/*.parquet'")
        .fetchone()
    )
    assert n == summary["scored"] and best == pytest.approx(ranked["e_above_known_hull"].min())
    assert (tmp_path / "run" / "top.md").read_text().startswith("| rank | formula")

    again = screen(request, progress=False)
    assert again["chunks_skipped"] == again["chunks"] and again["scored"] == summary["scored"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "run" / "ranked.parquet"), ranked)
    with pytest.raises(FileExistsError, match="different max_arity"):
        screen(ScreenRequest(**{**request.__dict__, "max_arity": 2}), progress=False)


def test_screen_cli_errors(toy_model, tmp_path, capsys):
    assert (
        main(
            [
                "screen",
                "--elements",
                "Li,Xx",
                "--no-reference",
                "--model",
                toy_model,
                "--out",
                str(tmp_path / "a"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "unknown element symbol(s): 'Xx'" in capsys.readouterr().err
    assert main(["screen", "--model", toy_model, "--out", str(tmp_path / "b")]) == 2
    assert "give elements (e.g. Li,Mn,O) or systems" in capsys.readouterr().err
    assert (
        main(
            [
                "screen",
                "--elements",
                "Li,O",
                "--no-reference",
                "--model",
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert main(["screen", "--systems", "Li-O", "--model", toy_model, "--out", str(tmp_path / "e"), "--quiet"]) == 2
    assert "no --reference" in capsys.readouterr().err and not (tmp_path / "e").exists()
    code = main(
        [
            "screen",
            "--systems",
            "Li-O",
            "--charge-neutral",
            "--no-reference",
            "--model",
            toy_model,
            "--out",
            str(tmp_path / "d"),
            "--quiet",
        ]
    )
    assert code == 0
    ranked = pd.read_parquet(tmp_path / "d" / "ranked.parquet")
    assert set(ranked["formula"]) == {"Li2O"}  # the only charge-neutral Li-O grid point


def test_a_killed_writers_temporary_file_is_ignored_and_removed(toy_model, tmp_path):
    """A Dask worker killed while writing leaves an empty hidden temporary file beside the
    parts: the ranking must not read it, and scoring removes it once all chunks are done."""
    from screening.screen import finish, plan, score

    prepared = plan(
        ScreenRequest(
            model=toy_model, out=str(tmp_path / "run"), elements=["Li", "O"], max_arity=2, chunk_size=10, device="cpu"
        )
    )
    stale = tmp_path / "run" / "scored" / ".part-00001.parquet.0123abcd.tmp"
    stale.write_bytes(b"")
    counts = score(prepared, workers=0, progress=False)
    assert not stale.exists() and counts["scored"] == 31
    stale.write_bytes(b"")  # and one appearing after scoring (a lost worker) is not read either
    summary = finish(prepared, counts, 0.0)
    assert summary["scored"] == len(pd.read_parquet(tmp_path / "run" / "ranked.parquet")) == 31
    assert len(pd.read_parquet(tmp_path / "run" / "scored")) == 31  # pyarrow skips hidden files


def test_calibrated_uncertainty_sets_the_probabilities(toy_model, reference, tmp_path):
    """A model whose card holds a fitted uncertainty: p_below uses sqrt((scale spread)^2 + floor^2);
    the calibration is pinned in the run's manifest, so a run never mixes two of them."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(toy_model, model)
    card = json.loads((model / "card.json").read_text())
    (model / "card.json").write_text(json.dumps(card | {"uncertainty": {"scale": 2.0, "floor": 0.1}}))
    request = li_mn_o(str(model), reference, tmp_path / "run", chunk_size=100)
    screen(request, progress=False)
    ranked = pd.read_parquet(tmp_path / "run" / "ranked.parquet")
    sigma = np.sqrt((2.0 * ranked["e_form_std"]) ** 2 + 0.1**2)
    np.testing.assert_allclose(ranked["p_below_known_hull"], ndtr(-ranked["e_above_known_hull"] / sigma))
    (model / "card.json").write_text(json.dumps(card | {"uncertainty": {"scale": 3.0, "floor": 0.1}}))
    with pytest.raises(FileExistsError, match="model_uncertainty"):
        screen(request, progress=False)


def test_a_second_run_into_a_busy_folder_is_refused_at_once_and_a_dead_holder_blocks_nothing(
    toy_model, reference, tmp_path
):
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from pathlib import Path; from screening import run_lock; "
                f"run_lock.acquire(Path({str(out)!r})); print('held', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.perf_counter()
        code = main(screen_args(toy_model, out, "--reference", reference))
        assert code == 2 and time.perf_counter() - started < 30
    finally:
        holder.kill()  # a killed run: its lock goes with it
        holder.wait()
    assert main(screen_args(toy_model, out, "--reference", reference)) == 0
    assert (out / "ranked.parquet").exists()


def test_a_failed_start_leaves_the_folder_reusable(toy_model, reference, tmp_path, capsys):
    out = tmp_path / "run"
    bad = tmp_path / "bad.csv"
    bad.write_text("formula,energy\nLi2O,-2\n")  # no target column
    args = screen_args(toy_model, out)
    assert main([*args, "--reference", str(bad)]) == 2
    assert "'target' column" in capsys.readouterr().err
    assert not (out / "_manifest.json").exists()
    assert main([*args, "--reference", reference]) == 0  # the corrected command is not refused
    assert (
        main(
            [
                "screen",
                "--elements",
                "Li",
                "--no-reference",
                "--model",
                toy_model,
                "--out",
                str(tmp_path / "one"),
                "--quiet",
            ]
        )
        == 2
    )
    assert not (tmp_path / "one").exists()  # a request refused before any work creates nothing


def test_runaway_spaces_are_refused_before_any_work_with_size_and_time(toy_model, tmp_path, capsys):
    import time

    args = ["screen", "--no-reference", "--model", toy_model, "--quiet"]
    elements = "H,Li,Be,B,C,N,O,F,Na,Mg,Al,Si,P,S,Cl,K,Ca,Sc,Ti,V,Cr,Mn,Fe,Co,Ni,Cu,Zn,Ga,Ge,As"
    started = time.perf_counter()
    assert (
        main([*args, "--elements", elements, "--max-arity", "5", "--max-atoms", "20", "--out", str(tmp_path / "a")])
        == 2
    )
    err = capsys.readouterr().err
    assert "candidates (~" in err and " GB of output" in err and " h at " in err and time.perf_counter() - started < 10
    assert "--max-candidates" in err or "free" in err
    assert not (tmp_path / "a").exists()
    # over the default budget: refused with the size; an explicit --max-candidates below it still refuses
    assert (
        main([*args, "--elements", elements, "--max-arity", "4", "--max-atoms", "14", "--out", str(tmp_path / "b")])
        == 2
    )  # 27.8M
    assert "pass --max-candidates" in capsys.readouterr().err
    assert main([*args, "--elements", "Li,O", "--max-candidates", "10", "--out", str(tmp_path / "c")]) == 2
    assert "over the limit of 10" in capsys.readouterr().err


def test_a_resumed_run_reports_chunks_on_disk_as_resumed_and_redirected_output_has_no_bars(
    toy_model, reference, tmp_path, capsys
):
    from screening.screen import finish, plan, score

    request = li_mn_o(toy_model, reference, tmp_path / "run", chunk_size=20)
    first, again = [], []
    prepared = plan(request)
    finish(prepared, score(prepared, workers=0, progress=True, on_chunk=lambda *a: first.append(a)), 0.0)
    prepared = plan(request)
    score(prepared, workers=0, progress=True, on_chunk=lambda *a: again.append(a))
    assert first[-1] == (93, 93, 0) and all(resumed == done for done, _, resumed in again)
    assert "\r" not in capsys.readouterr().err  # stderr is not a terminal here: no progress bar


def test_ctrl_c_is_one_line_and_says_how_to_resume(monkeypatch, capsys):
    import screening.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_handler(parser(), interrupted))
    assert cli.main(["screen", "--elements", "Li,O", "--model", "m", "--out", "o"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted; run the same command again to resume" in err[0]


def _with_handler(parser, handler):
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(handler=handler)
    return parser


def test_a_screen_never_imports_the_training_code(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from screening.screen import ScreenRequest, screen; "
        f"screen(ScreenRequest(model='data/models/default', out={str(tmp_path / 'r')!r}, systems=[['Li', 'O']], "
        "reference=[]), progress=False, workers=0); "
        "print(sorted(m for m in sys.modules if m in ('screening.models.fit', 'screening.models.training', "
        "'screening.stability_fit', 'prefect')))"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_min_arity_screens_only_the_larger_systems(toy_model, reference, tmp_path):
    request = li_mn_o(toy_model, reference, tmp_path / "run", chunk_size=50)
    request = ScreenRequest(**{**request.__dict__, "min_arity": 3, "max_arity": 3})
    summary = screen(request, progress=False, workers=0)
    assert summary["candidates"] == 109  # the Li-Mn-O grid of <= 10 atoms, no binaries
    assert set(pd.read_parquet(tmp_path / "run" / "ranked.parquet")["chemsys"]) == {"Li-Mn-O"}
    with pytest.raises(ValueError, match="min_arity must be 2 to max_arity"):
        ScreenRequest(**{**request.__dict__, "min_arity": 4})


def test_a_local_cluster_starts_in_the_background_only_for_spaces_of_several_chunks(toy_model, tmp_path):
    from distributed import Client

    from screening.screen import run_cluster

    def request(max_arity: int) -> ScreenRequest:
        return ScreenRequest(
            model=str(toy_model),
            out=str(tmp_path / "run"),
            elements=["Li", "Mn", "O"],
            max_arity=max_arity,
            chunk_size=100,
            reference=[],
        )

    one_chunk, several = request(2), request(3)  # 93 and 202 candidates
    for requests, kwargs in ((one_chunk, {}), (several, {"workers": 0}), (several, {"scheduler": "tcp://h:1"})):
        with run_cluster(requests, **kwargs) as place:
            assert place.local is None and place.address == kwargs.get("scheduler")  # nothing started
    with run_cluster([one_chunk, several], workers=1) as place:
        with Client(place.address) as client:  # up, one worker, which imported the scoring code
            assert sum(client.nthreads().values()) == 1
            assert all(client.run(lambda: "screening.scoring" in __import__("sys").modules).values())
        summary = screen(several, progress=False, scheduler=place.address)
    assert summary["scored"] == 202 and summary["chunks"] == 3


def test_a_cluster_started_early_is_the_one_the_run_uses_with_its_model_loaded(toy_model, tmp_path):
    from distributed import Client

    from screening import cluster
    from screening.screen import cluster_started_early, run_cluster

    request = ScreenRequest(
        model=toy_model, out=str(tmp_path / "run"), elements=["Li", "Mn", "O"], max_arity=3, chunk_size=100
    )
    with cluster_started_early(request, workers=1):
        (early,) = cluster._EARLY.values()
        with run_cluster(request, workers=1) as place:
            assert place.local is early and not cluster._EARLY  # taken, not started again
            with Client(place.address) as client:  # the worker loaded the model before any chunk
                loaded = client.run(lambda: [key[0] for key in __import__("screening.scoring").scoring._MODELS])
                assert list(loaded.values()) == [[str(Path(toy_model).resolve())]]
            summary = screen(request, progress=False, scheduler=place.address)
    assert summary["scored"] == 202
    with cluster_started_early(request, workers=1):  # never taken: closed with the block
        (unused,) = cluster._EARLY.values()
    assert not cluster._EARLY
    unused._pool.shutdown(wait=True)  # its close ran in the background
    assert unused._cluster.result().status.name == "closed"
    with cluster_started_early(request, workers=0):  # a run without a local cluster starts none
        assert not cluster._EARLY


def test_a_background_cluster_that_cannot_start_says_why():
    from screening.cluster import BackgroundCluster

    with BackgroundCluster(1, preload=("no_such_module_xyz",)) as cluster:
        with pytest.raises(ModuleNotFoundError, match="no_such_module_xyz"):
            cluster.address  # noqa: B018 (the property raises the start's error)
