"""Export the element tables that need matminer/pymatgen (not on the GPU image) to one npz."""

from pathlib import Path

import numpy as np

from screening.element_tables import magpie_table, metal_flags, pymatgen_ion_data
from screening.evidence import ELEMENT_PROPERTIES
from screening.featurizers.element_embedding import embedding_table
from screening.featurizers.magpie import MAGPIE_PROPERTIES

PROPERTIES = tuple(dict.fromkeys(MAGPIE_PROPERTIES + ELEMENT_PROPERTIES))  # the featurizer's and evidence's

x, ox, n = pymatgen_ion_data()
m2v, known = embedding_table("mat2vec200")
np.savez(
    Path(__file__).with_name("tables.npz"),
    magpie=magpie_table(PROPERTIES),
    props=np.array(PROPERTIES),
    x=x,
    ox=ox,
    n=n,
    metal=metal_flags(),
    m2v=m2v,
    m2v_known=known,
)
