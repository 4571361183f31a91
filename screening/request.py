"""What a screen is asked to do: one declaration, checked once, from which the command line and
the ``screen-candidates`` flow take their defaults. No heavy imports: ``screening screen --help``
reads it without loading torch or pandas."""

from __future__ import annotations

from dataclasses import dataclass, field

BUDGET_CANDIDATES = 20_000_000  # larger spaces need an explicit max_candidates (--max-candidates)


@dataclass
class ScreenRequest:
    model: str
    out: str
    elements: list[str] | None = None
    systems: list[list[str]] | None = None
    max_arity: int = 3
    max_atoms: int | None = 10
    max_amount: int | None = None
    charge_neutral: bool = False
    exclude_known: bool = True
    reference: list[str] = field(default_factory=list)
    chunk_size: int = 100_000
    top_k: int = 50
    device: str = "auto"
    bf16: bool = False
    max_candidates: int | None = None  # the largest space this request may run (default BUDGET_CANDIDATES)

    def __post_init__(self):
        """The one check of a request, whichever way it came (command line, flow, Python)."""
        if not self.elements and not self.systems:
            raise ValueError("give elements (e.g. Li,Mn,O) or systems (e.g. Li-Mn-O,Ba-Ti-O) to screen")
        if not 2 <= self.max_arity <= 5:
            raise ValueError(f"max_arity must be 2 to 5, got {self.max_arity}")
        for name in ("max_atoms", "max_amount", "max_candidates"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.chunk_size < 1 or self.top_k < 1:
            raise ValueError(f"chunk_size and top_k must be at least 1, got {self.chunk_size} and {self.top_k}")
