"""Run the test suite where matminer and pymatgen are not installed (see ``gpu_cli.py``):
``PYTHONPATH=. python3 bench/device/pytest_with_tables.py -q tests/test_models.py``. Test modules
that import those packages, Prefect, Dask or DuckDB cannot be collected there; the rest run on the
GPU machine's own CPU and GPU."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import gpu_cli  # noqa: F401  (replaces the table functions on import)

sys.exit(pytest.main(sys.argv[1:]))
