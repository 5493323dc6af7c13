"""The report's plots: matplotlib figures rendered to inline PNG data URIs.

PNG rather than SVG: a histogram as SVG carries every glyph and bar as paths (~40 KB);
at 90 dpi a PNG is ~15 KB, which keeps a page of a few dozen plots well under a MB.
Figures are built with `matplotlib.figure.Figure` (no pyplot): no global state, no GUI
backend to pick.
"""

from __future__ import annotations

import base64
import dataclasses
import io

import numpy as np
from matplotlib.figure import Figure

TRAIN_COLOR, EVAL_COLOR, MARK_COLOR = "#1f77b4", "#ff7f0e", "#d62728"
_DPI = 90


@dataclasses.dataclass(frozen=True)
class BinnedCounts:
    """A histogram to draw: bucket edges [k + 1] and counts [k]."""

    edges: np.ndarray
    counts: np.ndarray

    def density(self) -> np.ndarray:
        """Counts per unit of the axis, as a fraction of the total (comparable across splits
        of different sizes and bucket widths); a zero-width bucket is drawn 1 unit wide."""
        widths = np.diff(self.edges)
        return self.counts / max(self.counts.sum(), 1e-300) / np.where(widths > 0, widths, 1.0)


def _data_uri(fig: Figure, tight: bool = True) -> str:
    """The figure as a PNG data URI. `tight` fits the canvas to what is drawn, at the cost of
    drawing twice; a figure with fixed margins skips it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, **({"bbox_inches": "tight"} if tight else {}))
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    ax.tick_params(labelsize=7)
    return fig, ax


def overlaid_histograms(title: str, splits: dict[str, BinnedCounts], flagged: bool) -> str:
    """Train and eval value histograms of one feature on one axis (densities).

    Drawn once per plotted channel on every run, so kept cheap (~35 ms instead of ~75 ms
    measured): fixed margins instead of a tight bounding box, and no y tick labels (the
    shapes are what is compared; a density's scale says little)."""
    fig, ax = _figure(3.6, 2.1)
    fig.subplots_adjust(left=0.03, right=0.97, bottom=0.2, top=0.87)   # room for an axis multiplier (1e6)
    ax.set_yticks([])
    for split, bars in splits.items():
        color = TRAIN_COLOR if split == "train" else EVAL_COLOR
        edges = bars.edges if np.ptp(bars.edges) > 0 else bars.edges + np.array([-0.5, 0.5])
        ax.stairs(bars.density(), edges, label=split, color=color, fill=split == "train",
                  alpha=0.45 if split == "train" else 1.0, linewidth=1.5)
    ax.set_title(title, fontsize=9, color=MARK_COLOR if flagged else "black")
    ax.legend(fontsize=7, frameon=False)
    return _data_uri(fig, tight=False)


def length_histograms(splits: dict[str, BinnedCounts], max_length: int) -> str:
    """Sample lengths per split (fractions of each split's samples), max_length marked."""
    fig, ax = _figure(6.0, 2.6)
    for split, bars in splits.items():
        color = TRAIN_COLOR if split == "train" else EVAL_COLOR
        ax.stairs(bars.counts / max(bars.counts.sum(), 1e-300), bars.edges, label=split, color=color,
                  fill=split == "train", alpha=0.45 if split == "train" else 1.0, linewidth=1.5)
    ax.axvline(max_length, color=MARK_COLOR, linestyle="--", linewidth=1.2, label=f"max_length = {max_length}")
    ax.set_xlabel("valid time steps", fontsize=8)
    ax.set_ylabel("fraction of samples", fontsize=8)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _data_uri(fig)


def label_fractions(classes: list[str], splits: dict[str, list[float]]) -> str:
    """Each class's share of each split's samples, splits side by side (splits of different
    sizes compare directly; the counts are in the table beside)."""
    fig, ax = _figure(max(4.0, min(12.0, 0.35 * len(classes) + 2)), 2.6)
    x = np.arange(len(classes))
    width = 0.8 / max(len(splits), 1)
    for i, (split, counts) in enumerate(splits.items()):
        ax.bar(x + (i - (len(splits) - 1) / 2) * width, np.asarray(counts) / max(sum(counts), 1e-300), width,
               label=split, color=TRAIN_COLOR if split == "train" else EVAL_COLOR)
    ax.set_xticks(x, classes, rotation=45 if len(classes) > 8 else 0, ha="right" if len(classes) > 8 else "center")
    ax.set_ylabel("fraction of split", fontsize=8)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _data_uri(fig)


def element_maps(mean: np.ndarray, std: np.ndarray) -> str:
    """Per-element mean and std, each [T, prod(trailing)], as images (per_element statistics)."""
    fig = Figure(figsize=(7.0, 2.8))
    for i, (name, values) in enumerate((("mean", mean), ("std", std))):
        ax = fig.add_subplot(1, 2, i + 1)
        image = ax.imshow(values, aspect="auto", cmap="viridis")
        ax.set_title(f"per-element {name}", fontsize=9)
        ax.set_ylabel("time step", fontsize=8)
        ax.tick_params(labelsize=7)
        fig.colorbar(image, ax=ax)
    return _data_uri(fig)
