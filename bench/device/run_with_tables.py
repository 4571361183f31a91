"""Run a script with the element tables of ``tables.npz`` (see ``gpu_cli.py``):
``python3 bench/device/run_with_tables.py bench/discovery.py --model DIR``."""

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import gpu_cli  # noqa: F401  (replaces the table functions on import)

sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
