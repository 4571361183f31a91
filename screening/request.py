"""What a screen is asked to do: one declaration, checked once, from which the command line (its
``screen`` options, via :mod:`screening.cli_options`) and the ``screen-candidates`` flow take their
names, defaults and help. No heavy imports: ``screening screen --help`` reads it without loading
torch or pandas."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field

BUDGET_CANDIDATES = 20_000_000  # larger spaces need an explicit max_candidates (--max-candidates)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _systems(text: str) -> list[list[str]]:
    return [[e.strip() for e in system.split("-") if e.strip()] for system in _names(text)]


def option(help: str, default=MISSING, *, factory=MISSING, **cli) -> field:
    """A field that is also a command-line option: ``help`` and argparse settings in its metadata
    (``flag``, ``metavar``, ``parse`` for text -> value, ``invert`` for a flag that sets False,
    ``append`` for a repeatable one)."""
    return field(default=default, default_factory=factory, metadata={"cli": {"help": help, **cli}})


@dataclass
class ScreenRequest:
    model: str = option("model folder, e.g. data/models/default", metavar="DIR")
    out: str = option("run folder (created; the same command resumes it)", metavar="DIR")
    elements: list[str] | None = option(
        "comma-separated elements, e.g. Li,Mn,Fe,O (every system of 2..--max-arity of them)", None, parse=_names
    )
    systems: list[list[str]] | None = option(
        "explicit chemical systems instead, e.g. Li-Mn-O,Ba-Ti-O", None, parse=_systems
    )
    max_arity: int = option("largest number of elements per system", 3)
    min_arity: int = option("smallest number of elements per system, with --elements", 2)
    max_atoms: int | None = option("atoms per formula unit", 10)
    max_amount: int | None = option("atoms of one element (default: no limit)", None)
    charge_neutral: bool = option(
        "keep only charge-neutral candidates (loses most intermetallic stable compounds)", False
    )
    exclude_known: bool = option(
        "also score compositions in the reference (default: skip them)", True, flag="--keep-known", invert=True
    )
    reference: list[str] = option(
        "known compounds, formula,target (eV/atom); repeat for several files", factory=list, metavar="CSV", append=True
    )
    chunk_size: int = option("candidates per task", 100_000, metavar="N")
    top_k: int = option("rows of top.csv / top.md", 50, metavar="K")
    device: str = option("cpu, cuda or auto (default: a GPU when there is one)", "auto")
    bf16: bool = option("bfloat16 matmuls (faster on CPUs and GPUs; figures in docs/benchmarks.md)", False)
    max_candidates: int | None = option(
        f"run a space of up to N candidates (default: refuse spaces over {BUDGET_CANDIDATES:,} with their size and "
        "time)",
        None,
        metavar="N",
    )

    def __post_init__(self):
        """The one check of a request, whichever way it came (command line, flow, Python)."""
        if not self.elements and not self.systems:
            raise ValueError("give elements (e.g. Li,Mn,O) or systems (e.g. Li-Mn-O,Ba-Ti-O) to screen")
        if not 2 <= self.max_arity <= 5:
            raise ValueError(f"max_arity must be 2 to 5, got {self.max_arity}")
        if not 2 <= self.min_arity <= self.max_arity:
            raise ValueError(f"min_arity must be 2 to max_arity ({self.max_arity}), got {self.min_arity}")
        for name in ("max_atoms", "max_amount", "max_candidates"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.chunk_size < 1 or self.top_k < 1:
            raise ValueError(f"chunk_size and top_k must be at least 1, got {self.chunk_size} and {self.top_k}")
