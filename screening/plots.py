"""Pictures people look at: parity plots and learning curves (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def import_in_background() -> None:
    """Start importing matplotlib (~0.6 s) on a thread, so that pictures drawn later do not wait
    for it; meant to overlap work that releases the interpreter lock (a DuckDB query, qhull)."""
    import threading

    threading.Thread(target=_pyplot, name="import-matplotlib", daemon=True).start()


def parity_plot(
    y_true, y_pred, path: str | Path, title: str, unit: str = "eV/atom", metrics: dict | None = None
) -> Path:
    plt = _pyplot()
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    fig, ax = plt.subplots(figsize=(6.2, 5.2), dpi=120)
    lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    pad = 0.03 * (hi - lo or 1.0)
    cells = ax.hexbin(
        y_true,
        y_pred,
        gridsize=80,
        bins="log",
        mincnt=1,
        cmap="viridis",
        extent=(lo - pad, hi + pad, lo - pad, hi + pad),
    )
    fig.colorbar(cells, ax=ax, label="compounds per cell", shrink=0.8)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="crimson", lw=1, label="y = x")
    ax.set(
        xlim=(lo - pad, hi + pad),
        ylim=(lo - pad, hi + pad),
        xlabel=f"DFT value ({unit})",
        ylabel=f"predicted ({unit})",
        title=title,
    )
    if metrics:
        text = (
            f"MAE {metrics['mae']:.4f} {unit}\nRMSE {metrics['rmse']:.4f} {unit}\n"
            f"R² {metrics['r2']:.4f}\nn = {metrics['n']:,}"
        )
        ax.text(
            0.04,
            0.96,
            text,
            transform=ax.transAxes,
            va="top",
            fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"},
        )
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def learning_curve(history: list[dict], path: str | Path, title: str, unit: str = "eV/atom") -> Path:
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    train = np.array([h["train_mae"] for h in history])
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    ax.plot(epochs, train.mean(axis=1), color="tab:blue", label="training MAE (mean of members)")
    if all(h.get("val_mae") is not None for h in history):  # a final model on every row has none
        val = np.array([h["val_mae"] for h in history])
        for k in range(val.shape[1]):
            ax.plot(epochs, val[:, k], color="tab:orange", alpha=0.3, lw=0.8)
        ax.plot(epochs, val.mean(axis=1), color="tab:orange", label="validation MAE (mean; thin: members)")
    ax.set(xlabel="epoch", ylabel=f"MAE ({unit})", title=title, yscale="log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
