"""The ``screen`` command's options are the fields of ``ScreenRequest``: declared once."""

from dataclasses import fields

import pytest

from screening.cli import build_parser
from screening.cli_options import from_options
from screening.request import ScreenRequest


def _request(*argv: str) -> ScreenRequest:
    return from_options(ScreenRequest, build_parser().parse_args(["screen", *argv]))


def test_every_request_field_is_an_option_with_the_requests_default():
    request = _request("--model", "m", "--out", "o", "--elements", "Li,Mn,O")
    assert request == ScreenRequest(model="m", out="o", elements=["Li", "Mn", "O"])
    help_text = build_parser()._subparsers._group_actions[0].choices["screen"].format_help()
    for f in fields(ScreenRequest):
        flag = f.metadata["cli"].get("flag", "--" + f.name.replace("_", "-"))
        assert flag in help_text, f"{f.name} has no option"


def test_options_parse_to_the_request_fields():
    request = _request(
        "--model",
        "m",
        "--out",
        "o",
        "--systems",
        "Li-Mn-O, Ba-Ti-O",
        "--keep-known",
        "--reference",
        "a.csv",
        "--reference",
        "b.csv",
        "--max-atoms",
        "6",
        "--bf16",
        "--max-candidates",
        "1000",
    )
    assert request.systems == [["Li", "Mn", "O"], ["Ba", "Ti", "O"]]
    assert request.exclude_known is False and request.bf16 is True
    assert request.reference == ["a.csv", "b.csv"] and request.max_atoms == 6 and request.max_candidates == 1000


def test_a_bad_option_is_refused_by_the_request_check_or_the_parser(capsys):
    with pytest.raises(ValueError, match="give elements"):
        _request("--model", "m", "--out", "o")
    with pytest.raises(SystemExit):
        _request("--model", "m", "--out", "o", "--elements", "Li,O", "--chunk-size", "0")
    assert "must be a positive integer" in capsys.readouterr().err


def test_a_command_ends_without_the_final_garbage_collections_after_its_own_exit_handlers():
    """skip_final_collections: gc.freeze runs at exit, once, after the exit handlers the command
    registered later (here one that makes a cycle, which is still collected) and before those
    registered earlier (which see the objects frozen)."""
    import subprocess
    import sys

    script = """
import atexit, gc
freezes = []
freeze = gc.freeze
gc.freeze = lambda: freezes.append(1) or freeze()  # counted: registered once, run once
atexit.register(lambda: print("frozen at the end", gc.get_freeze_count() > 0, len(freezes)))
from screening.cli_options import skip_final_collections
skip_final_collections()
skip_final_collections()
class Cycle:
    pass
def later():
    c = Cycle()
    c.me = c
    del c
    print("collected before the freeze", gc.collect() > 0, gc.get_freeze_count() == 0)
atexit.register(later)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == ["collected before the freeze True True", "frozen at the end True 1"]
