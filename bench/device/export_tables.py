"""Export the element tables that need matminer/pymatgen (not on the GPU image) to one npz."""

from pathlib import Path

import numpy as np

from screening.element_tables import magpie_table, metal_flags, pymatgen_ion_data
from screening.featurizers.element_embedding import embedding_table
from screening.featurizers.magpie import MAGPIE_PROPERTIES

x, ox, n = pymatgen_ion_data()
m2v, known = embedding_table("mat2vec200")
np.savez(
    Path(__file__).with_name("tables.npz"),
    magpie=magpie_table(MAGPIE_PROPERTIES),
    props=np.array(MAGPIE_PROPERTIES),
    x=x,
    ox=ox,
    n=n,
    metal=metal_flags(),
    m2v=m2v,
    m2v_known=known,
)
