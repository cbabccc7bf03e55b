"""Charts every stage draws: matplotlib without a display, PNGs with no timestamp metadata so
the same data gives byte-identical files."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "storyteller", "figure.dpi": 100})
    return plt


def save_png(fig, path: Path) -> None:
    """Write and close `fig`; no metadata, so reruns give the same bytes."""
    fig.savefig(path, format="png", metadata={"Software": None}, bbox_inches="tight")
    pyplot().close(fig)
