"""What the flows share: when to retry, and pictures as artifacts."""

from __future__ import annotations

import base64
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
        except BaseException as raised:  # noqa: BLE001 - we only classify it
            error = raised
    return isinstance(error, (OSError, TimeoutError)) and not isinstance(error, USER_ERRORS)


def picture_artifact(path: str | Path, key: str, description: str) -> None:
    """A PNG as an image artifact. Embedded as a data URI: it shows in the Prefect UI wherever
    the server runs, without serving the output folder."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    create_image_artifact(image_url=f"data:image/png;base64,{encoded}", key=key, description=description)
