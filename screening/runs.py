"""The resumable chunked run that featurizing a table and screening a space share.

An output folder holds one run: ``_manifest.json`` (what was asked for), one Parquet part per
chunk in each of its part folders (``part-NNNNN.parquet``, written atomically, so a part on disk is
a finished chunk), and the run's own summary files. Re-running the same request skips the parts on
disk; a folder that holds another request's run, or anything else, is refused with one line saying
what differs. The folder may be a local path or any fsspec URL (:class:`Storage`).
"""

from __future__ import annotations

import json

from screening.tabular_io import Storage

MANIFEST = "_manifest.json"


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def check_folder(out: Storage, wanted: dict, what: str, reuse: str, ignore: tuple[str, ...] = ()) -> bool:
    """Refuse ``out`` if it holds a ``what`` (e.g. "screening run") of another request, naming what
    differs (``reuse`` says how to proceed), or files that are not one (other than ``ignore``).
    Writes nothing, so a start that fails later leaves the folder as it was. True if the folder
    holds this request's run."""
    if out.local and out.exists() and not out.fs.isdir(out.root):
        raise FileExistsError(f"--out {out.url} is a file, not a folder; choose another --out")
    if out.exists(MANIFEST):
        previous = json.loads(out.read_text(MANIFEST))
        if previous != wanted:
            changed = sorted(k for k in wanted.keys() | previous.keys() if wanted.get(k) != previous.get(k))
            raise FileExistsError(f"{out.url} holds a {what} made with different {', '.join(changed)}; {reuse}")
        return True
    if any(name.rstrip("/").rsplit("/", 1)[-1] not in ignore for name in out.listing()):
        raise FileExistsError(f"output directory {out.url} exists and is not a {what}; choose another --out")
    return False


def start_folder(out: Storage, wanted: dict, part_folders: tuple[str, ...]) -> None:
    """Make the part folders, delete the temporaries of writes a killed run left, and record the
    manifest if the folder has none yet."""
    for name in part_folders:
        out.makedirs(name)
    remove_stale_temporaries(out, part_folders)
    if not out.exists(MANIFEST):
        out.write_text(json.dumps(wanted, indent=2), MANIFEST)


def remove_stale_temporaries(out: Storage, part_folders: tuple[str, ...]) -> None:
    """Delete the temporary files of interrupted writes (finished parts are never touched)."""
    for name in part_folders:
        for stale in sorted(set(out.glob(name, "*.tmp")) | set(out.glob(name, ".*.tmp"))):
            out.remove_path(stale)


def progress_bar(enabled: bool, total: int | None, unit: str, desc: str):
    """A tqdm bar, or None. ``disable=None``: no bar when stderr is not a terminal (a redirected
    log would fill with carriage-return lines)."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, unit_scale=True, desc=desc, disable=None)
