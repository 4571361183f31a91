"""What ``python -m flows screen-candidates`` starts before Prefect and the flow's code are even
imported (~2 s of one core), while Prefect's temporary server starts (~4 s of one core): the
local Dask cluster the run will use, its fork server importing torch and the workers loading
the model (:func:`screening.screen.cluster_started_early`), and the run's plan
(:func:`screening.screen_plan.planned_early`), which the flow's ``plan`` task then takes. Nothing
here imports Prefect."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt

from screening.datasets import data_path
from screening.request import ScreenRequest
from screening.screen import cluster_started_early
from screening.screen_plan import planned_early

REQUEST_FIELDS = frozenset(f.name for f in dataclasses.fields(ScreenRequest))
# the flow's parameters: the request's fields and where it computes (tests/test_flows.py checks them)
PARAMETERS = REQUEST_FIELDS | {"scheduler", "workers"}


@contextlib.contextmanager
def start_early(parameters: dict):
    """The cluster and the plan of a run of ``parameters``, started now and taken by the flow
    within this block (closed or dropped at its end if it never asks). Parameters it cannot read
    (a name the flow does not take, a value the request refuses) start nothing: the flow's own
    validation reports them."""
    try:
        request = screen_request(parameters) if set(parameters) <= PARAMETERS else None
    except Exception:  # the flow's own validation reports it
        request = None
    if request is None:
        yield
        return
    with (
        cluster_started_early(request, parameters.get("scheduler"), parameters.get("workers")),
        planned_early(request),
    ):
        yield


def screen_request(parameters: dict) -> ScreenRequest:
    """The flow's parameters as the library's request: ``{date}`` in ``out`` and ``{data}`` in
    ``reference`` resolved."""
    given = {k: v for k, v in parameters.items() if k in REQUEST_FIELDS}
    given["out"] = given["out"].replace("{date}", dt.datetime.now(dt.UTC).date().isoformat())
    given["reference"] = [data_path(p) for p in given.get("reference") or []]
    return ScreenRequest(**given)
