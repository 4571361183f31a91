"""Column names of a screen's scored and ranked tables, one declaration for every module that
writes or reads them (documented in docs/outputs.md)."""

from enum import StrEnum


class Col(StrEnum):
    """Column names of the scored and ranked tables; members are the strings themselves."""

    rank = "rank"
    candidate_id = "candidate_id"
    formula = "formula"
    chemsys = "chemsys"
    n_elements = "n_elements"
    e_form_pred = "e_form_pred"
    e_form_std = "e_form_std"
    known_hull_energy = "known_hull_energy"
    e_above_known_hull = "e_above_known_hull"
    p_below_known_hull = "p_below_known_hull"
    known_decomposition = "known_decomposition"
    rare_element = "rare_element"
    evidence_logit = "evidence_logit"
    log_system_known = "log_system_known"
    log_sub_hull_compounds = "log_sub_hull_compounds"
    p_stable = "p_stable"
    e_above_combined_hull = "e_above_combined_hull"
    stable_combined = "stable_combined"
    rank_in_system = "rank_in_system"
