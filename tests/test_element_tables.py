"""Element tables kept on disk: read back equal, without importing matminer; rebuilt when corrupt."""

import json
import os
import subprocess
import sys

import numpy as np

READ = """
import json, sys
from screening.element_tables import magpie_table, metal_flags, pymatgen_ion_data
from screening.featurizers.element_embedding import embedding_table
tables = [magpie_table(("Electronegativity", "Column")), *pymatgen_ion_data(), metal_flags(),
          *embedding_table("mat2vec200")]
print(json.dumps({"matminer": "matminer" in sys.modules, "pymatgen": "pymatgen" in sys.modules,
                  "tables": [t.tolist() for t in tables]}))
"""


def _read(cache) -> dict:
    env = os.environ | {"SCREENING_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-c", READ], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_tables_are_read_back_equal_without_matminer_and_rebuilt_when_corrupt(tmp_path):
    from screening.element_tables import magpie_table, metal_flags, pymatgen_ion_data
    from screening.featurizers.element_embedding import embedding_table

    # what matminer's and pymatgen's data classes give in this process (the functions unwrapped)
    expected = [
        magpie_table.__wrapped__(("Electronegativity", "Column")),
        *pymatgen_ion_data.__wrapped__(),
        metal_flags.__wrapped__(),
        *embedding_table.__wrapped__("mat2vec200"),
    ]
    built = _read(tmp_path)
    assert built["matminer"] and len(list(tmp_path.glob("*.npz"))) == 4
    again = _read(tmp_path)
    assert not again["matminer"] and not again["pymatgen"]  # read from disk
    for got in (built["tables"], again["tables"]):
        assert len(got) == len(expected)
        for table, want in zip(got, expected):
            np.testing.assert_array_equal(np.array(table, dtype=want.dtype), want)
    (magpie,) = tmp_path.glob("magpie_table-*.npz")
    magpie.write_bytes(magpie.read_bytes()[:100])  # a truncated file: built again, and replaced
    rebuilt = _read(tmp_path)
    assert rebuilt["matminer"] and rebuilt["tables"] == built["tables"]
    assert not _read(tmp_path)["matminer"]
    # a cache folder that cannot be written: every process builds its tables, nothing fails
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert _read(blocked)["tables"] == built["tables"]
