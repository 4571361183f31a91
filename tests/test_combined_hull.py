"""Parts placed on the combined hull: rank_in_system of the systems a part holds whole."""

import pandas as pd
import pyarrow as pa

from screening.columns import Col
from screening.combined_hull import ranks_within_systems


def test_ranks_within_systems_follow_the_ranking_order_and_leave_nan_to_the_database():
    keys = pa.table(
        {
            Col.candidate_id: [5, 3, 9, 4, 7],
            Col.chemsys: ["Li-O", "Li-O", "Fe-O", "Li-O", "Fe-O"],
            Col.e_above_known_hull: [0.1, 0.1, -0.2, 0.0, 0.3],
            Col.p_below_known_hull: [0.4, 0.4, 0.9, 0.5, 0.1],
            Col.p_stable: [0.2, 0.2, 0.8, 0.2, 0.9],
        }
    )
    sizes = pd.Series({"Li-O": 3, "Fe-O": 4})  # Fe-O has candidates in another part
    within, whole = ranks_within_systems(keys, sizes)
    assert within.tolist()[:2] == [3, 2] and within[3] == 1  # Li-O: p_stable ties, then e_above, then id
    assert whole.tolist() == [True, True, False, True, False]
    within, whole = ranks_within_systems(keys.drop_columns([Col.p_stable]), sizes)  # by e_above_known_hull
    assert within.tolist() == [3, 2, 1, 1, 2]
    nan = keys.set_column(2, Col.e_above_known_hull, pa.array([0.1, float("nan"), -0.2, 0.0, 0.3]))
    assert not ranks_within_systems(nan, sizes)[1].any()
