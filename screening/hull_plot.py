"""Pictures of a chemical system's hull: known compounds against predicted candidates.

Binary systems: formation energy against composition, with the hull of the known compounds and
that of known and predicted together. Ternary: the composition triangle, with the tie-lines of
the known hull and the candidates coloured by their predicted distance to it. Four or more
elements cannot be drawn as a hull; the picture is then the system's best candidates with their
predicted distance to the known hull and the ensemble's spread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm

from screening.columns import Col
from screening.composition import CompositionBatch, parse_formulas
from screening.elements import Z_OF
from screening.enumerate import reduced_formulas
from screening.hull import hull_distances, restrict
from screening.plots import _pyplot

UNIT = "eV/atom"
MAX_KNOWN_LABELS = 12


def _fractions(batch: CompositionBatch, symbols: list[str]) -> np.ndarray:
    out = np.zeros((len(batch), len(symbols)))
    fraction = batch.fraction
    for j, s in enumerate(symbols):
        out[:, j] = np.where(batch.z == Z_OF[s], fraction, 0).sum(axis=1)
    return out


def hull_picture(
    chemsys: str,
    ranked: pd.DataFrame,
    ref_batch: CompositionBatch,
    ref_energy: np.ndarray,
    path: str | Path,
    label_top: int = 6,
) -> Path:
    """Draw the hull picture of ``chemsys`` (e.g. ``"Li-Mn-O"``) into ``path`` (PNG)."""
    symbols = chemsys.split("-")
    cands = ranked[ranked[Col.chemsys] == chemsys].sort_values(Col.e_above_known_hull)
    if len(symbols) > 3:
        return _ladder(chemsys, cands, path, label_top=30)
    known_batch, known_e = restrict(ref_batch, ref_energy, {Z_OF[s] for s in symbols})
    elements, _ = parse_formulas(symbols)
    known_batch = CompositionBatch.concat(known_batch, elements)
    known_e = np.concatenate([known_e, np.zeros(len(symbols))])
    known = hull_distances(known_batch, known_e)
    names = np.array(reduced_formulas(known_batch), dtype=object)
    cand_batch, _ = parse_formulas(cands["formula"].tolist())
    x_known, x_cand = _fractions(known_batch, symbols), _fractions(cand_batch, symbols)
    plt = _pyplot()
    if len(symbols) == 2:
        fig, ax = plt.subplots(figsize=(7, 4.8), dpi=120)
        _binary(ax, symbols, x_known[:, 1], known_e, known.stable, names, x_cand[:, 1], cands, label_top)
    else:
        fig, ax = plt.subplots(figsize=(7, 6.2), dpi=120)
        _ternary(fig, ax, symbols, x_known, known_e, known.stable, names, x_cand, cands, label_top)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _binary(ax, symbols, x_known, e_known, stable, names, x_cand, cands, label_top):
    order = np.argsort(x_known[stable])
    ax.plot(x_known[stable][order], e_known[stable][order], "-", color="black", lw=1.2, label="hull of known compounds")
    ax.scatter(x_known[~stable], e_known[~stable], s=18, facecolors="none", edgecolors="0.4", label="known, above hull")
    ax.scatter(x_known[stable], e_known[stable], s=30, color="black", zorder=3, label="known, on hull")
    pred = cands[Col.e_form_pred].to_numpy()
    below = cands[Col.e_above_known_hull].to_numpy() < 0
    ax.errorbar(
        x_cand[~below],
        pred[~below],
        yerr=cands[Col.e_form_std].to_numpy()[~below],
        fmt="o",
        ms=3.5,
        color="tab:blue",
        alpha=0.6,
        elinewidth=0.8,
        label="candidates (±1 std)",
    )
    ax.errorbar(
        x_cand[below],
        pred[below],
        yerr=cands[Col.e_form_std].to_numpy()[below],
        fmt="*",
        ms=10,
        color="tab:red",
        elinewidth=0.8,
        label="candidates below known hull",
    )
    for name, xx, ee in zip(names[stable], x_known[stable], e_known[stable]):
        ax.annotate(name, (xx, ee), textcoords="offset points", xytext=(0, -12), ha="center", fontsize=7)
    for r in cands.head(label_top).itertuples():
        xx = x_cand[cands.index.get_loc(r.Index)]
        ax.annotate(
            r.formula,
            (xx, r.e_form_pred),
            textcoords="offset points",
            xytext=(4, 6),
            fontsize=7,
            color="tab:red" if r.e_above_known_hull < 0 else "tab:blue",
        )
    ax.set(
        xlabel=f"atom fraction of {symbols[1]} (rest {symbols[0]})",
        ylabel=f"formation energy ({UNIT})",
        title=f"{'-'.join(symbols)}: predicted candidates against the known hull",
        xlim=(-0.02, 1.02),
    )
    ax.axhline(0, color="0.8", lw=0.8, zorder=0)
    ax.legend(fontsize=8, loc="best")


def _ternary(fig, ax, symbols, x_known, e_known, stable, names, x_cand, cands, label_top):
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    xy_known, xy_cand = x_known @ corners, x_cand @ corners
    ax.plot(*np.vstack([corners, corners[:1]]).T, color="black", lw=1)
    for (cx, cy), s, dx, dy in zip(corners, symbols, (-0.04, 0.04, 0), (-0.04, -0.04, 0.03)):
        ax.text(cx + dx, cy + dy, s, ha="center", va="center", fontsize=12, weight="bold")
    for a, b in _tie_lines(x_known[stable], e_known[stable]):
        ax.plot(*xy_known[stable][[a, b]].T, color="0.35", lw=0.8, zorder=1)
    ax.scatter(*xy_known[stable].T, s=36, color="black", zorder=3, label="known, on hull (lines: its facets)")
    ax.scatter(*xy_known[~stable].T, s=14, facecolors="none", edgecolors="0.5", zorder=2, label="known, above hull")
    if stable.sum() - len(symbols) <= MAX_KNOWN_LABELS:  # beyond, names would hide the picture
        for name, (px, py) in zip(names[stable], xy_known[stable]):
            if name not in symbols:
                ax.annotate(name, (px, py), textcoords="offset points", xytext=(0, -11), ha="center", fontsize=7)
    e_above = cands[Col.e_above_known_hull].to_numpy()
    # limits on a 0.01 grid, so that the tick values are exactly inside them
    high = max(0.05, np.ceil(float(np.nanpercentile(e_above, 95)) * 100) / 100) if len(e_above) else 0.1
    low = min(-0.02, np.floor(float(np.nanmin(e_above)) * 100) / 100) if len(e_above) else -0.1
    norm = TwoSlopeNorm(vmin=low, vcenter=0.0, vmax=high)
    points = ax.scatter(
        *xy_cand.T,
        c=e_above,
        cmap="coolwarm",
        norm=norm,
        s=22,
        edgecolors="0.3",
        linewidths=0.3,
        zorder=4,
        label="candidates",
    )
    below = e_above < 0
    ax.scatter(
        *xy_cand[below].T,
        marker="*",
        s=120,
        facecolors="none",
        edgecolors="tab:red",
        linewidths=1.0,
        zorder=5,
        label="predicted below known hull",
    )
    bar = fig.colorbar(points, ax=ax, shrink=0.75, label=f"predicted distance to known hull ({UNIT})")
    bar.set_ticks(np.clip(np.round(np.r_[np.linspace(low, 0, 3), np.linspace(0, high, 5)[1:]], 4), low, high))
    for r in cands.head(label_top).itertuples():
        px, py = xy_cand[cands.index.get_loc(r.Index)]
        ax.annotate(
            f"{r.formula} ({r.e_above_known_hull:+.2f})",
            (px, py),
            textcoords="offset points",
            xytext=(6, 5),
            fontsize=7,
            zorder=6,
            color="darkred",
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 0.5},
        )
    ax.set(title=f"{'-'.join(symbols)}: predicted candidates against the known hull", aspect="equal")
    ax.axis("off")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False)


def _tie_lines(comp: np.ndarray, e: np.ndarray) -> set[tuple[int, int]]:
    """Edges of the lower hull facets of the stable points of a ternary system."""
    from scipy.spatial import ConvexHull, QhullError

    if len(comp) < 4:
        return {(a, b) for a in range(len(comp)) for b in range(a + 1, len(comp))}
    apex = np.array([[1 / 3, 1 / 3, e.max() + 1e3]])
    try:
        hull = ConvexHull(np.vstack([np.column_stack([comp[:, :2], e]), apex]), qhull_options="Qt")
    except QhullError:
        return set()
    edges = set()
    for simplex, eq in zip(hull.simplices, hull.equations):
        if eq[2] < -1e-12 and (simplex < len(comp)).all():
            for i in range(3):
                a, b = sorted((int(simplex[i]), int(simplex[(i + 1) % 3])))
                edges.add((a, b))
    return edges


def _ladder(chemsys: str, cands: pd.DataFrame, path, label_top: int) -> Path:
    plt = _pyplot()
    top = cands.head(label_top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(top) + 1.6), dpi=120)
    colors = np.where(top[Col.e_above_known_hull] < 0, "tab:red", "tab:blue")
    ax.errorbar(
        top[Col.e_above_known_hull],
        np.arange(len(top)),
        xerr=top[Col.e_form_std],
        fmt="none",
        ecolor="0.5",
        elinewidth=0.8,
    )
    ax.scatter(top[Col.e_above_known_hull], np.arange(len(top)), c=colors, s=22, zorder=3)
    ax.axvline(0, color="black", lw=1, label="hull of known compounds")
    ax.set_yticks(
        np.arange(len(top)),
        [f"{f}  (P={p:.2f})" for f, p in zip(top["formula"], top[Col.p_below_known_hull])],
        fontsize=7,
    )
    ax.set(
        xlabel=f"predicted distance to known hull ({UNIT}); bars: ensemble ±1 std",
        title=f"{chemsys}: best {len(top)} candidates\n(red: predicted below the known hull)",
    )
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
