"""What the flows share: when to retry, and pictures as artifacts."""

from __future__ import annotations

import base64
import logging
from contextlib import contextmanager
from pathlib import Path

from prefect.artifacts import create_image_artifact

# Not worth retrying: the user must change something (a path, an element, an existing folder).
USER_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def retry_on_io(task, task_run, state) -> bool:
    """Retry a task only when it failed on input/output (a network filesystem, an object store,
    a lost Dask worker connection), never on bad input, which would fail again the same way."""
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None:
        try:
            state.result()
        except BaseException as raised:
            error = raised
    return isinstance(error, (OSError, TimeoutError)) and not isinstance(error, USER_ERRORS)


def picture_artifact(path: str | Path, key: str, description: str) -> None:
    """A PNG as an image artifact. Embedded as a data URI: it shows in the Prefect UI wherever
    the server runs, without serving the output folder."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    create_image_artifact(image_url=f"data:image/png;base64,{encoded}", key=key, description=description)


def run_from_command_line(name: str, call) -> int:
    """Run a flow from ``python -m flows.X``: errors a user can fix become one line (exit 2)
    instead of a traceback; Prefect's own log of the failed run stays above it."""
    import os
    import sys

    from prefect.exceptions import ParameterTypeError

    try:
        call()
        return 0
    except ParameterTypeError as err:  # a parameter outside its declared type or bounds
        problems = "; ".join(line.strip(" -") for line in str(err).splitlines()[1:]) or str(err)
        print(f"{name}: error: invalid parameters: {problems}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted; run the same command again to resume (finished chunks are kept)", file=sys.stderr)
        return 130
    except RuntimeError as err:
        if "Failed to reach API" in str(err):
            url = os.environ.get("PREFECT_API_URL", "the configured API")
            print(
                f"{name}: error: no Prefect server answers at {url}; start one with `prefect server start`, "
                "or unset PREFECT_API_URL to run on the embedded API",
                file=sys.stderr,
            )
            return 2
        print(f"{name}: error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError, KeyError, ValueError, ConnectionError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"{name}: error: {message}", file=sys.stderr)
        return 2


class _ToRunLogger(logging.Handler):
    """Hands the library's log records to a Prefect run logger."""

    def __init__(self, run_logger):
        super().__init__(logging.INFO)
        self.run_logger = run_logger

    def emit(self, record: logging.LogRecord) -> None:
        self.run_logger.log(record.levelno, record.getMessage())


@contextmanager
def library_logs(run_logger):
    """Within a task: the ``screening`` library's INFO and higher records (training epochs,
    rejected reference rows, what is being screened) appear in the run's Prefect log."""
    library = logging.getLogger("screening")
    handler, level, propagate = _ToRunLogger(run_logger), library.level, library.propagate
    library.addHandler(handler)
    library.setLevel(logging.INFO)
    library.propagate = False  # once, through the run logger (which prints it too)
    try:
        yield
    finally:
        library.removeHandler(handler)
        library.setLevel(level)
        library.propagate = propagate
