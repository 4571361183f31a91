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


def test_a_command_ends_with_its_code_after_its_exit_handlers_and_without_the_teardown(tmp_path):
    """run_command: the process ends with main's code (1 if it raises) once the exit handlers
    registered since have run and logging and stdout are flushed; the interpreter's teardown
    (here an object that speaks when it is freed at the end) does not run."""
    import subprocess
    import sys

    script = """
import atexit, logging, sys
from screening.cli_options import run_command
class Noisy:
    def __del__(self):
        print("freed at teardown")
kept = Noisy()
def main():
    import logging.handlers
    held = logging.handlers.MemoryHandler(1000, target=logging.FileHandler(sys.argv[2]))  # written when flushed
    logging.basicConfig(handlers=[held], level=logging.INFO)
    atexit.register(lambda: print("handler", end=""))
    logging.getLogger("x").info("logged")
    if sys.argv[1] == "raise":
        raise RuntimeError("broken")
    if sys.argv[1] == "usage":
        import argparse
        argparse.ArgumentParser().parse_args(["--bogus"])  # exits 2
    if sys.argv[1] == "message":
        sys.exit("a message")
    if sys.argv[1] == "none":
        return None
    return int(sys.argv[1])
run_command(main)
"""
    for arg, code in (("3", 3), ("0", 0), ("none", 0), ("raise", 1), ("usage", 2), ("message", 1)):
        log = tmp_path / f"{arg}.log"
        done = subprocess.run(
            [sys.executable, "-c", script, arg, str(log)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == code and done.stdout == "handler", (arg, done.stdout, done.stderr)
        assert log.read_text() == "logged\n"
        assert ("RuntimeError: broken" in done.stderr) == (arg == "raise")
    # without it, the same script's teardown speaks
    plain = script.replace("run_command(main)", "sys.exit(main())")
    done = subprocess.run([sys.executable, "-c", plain, "0", str(tmp_path / "p.log")], capture_output=True, text=True)
    assert done.stdout == "handlerfreed at teardown\n"
