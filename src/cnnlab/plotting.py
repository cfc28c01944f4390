"""matplotlib for every figure cnnlab draws: imported on first use with the non-interactive Agg backend (no
display needed), and one way to save a figure.

May import: nothing from cnnlab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (imported here, on use: importing cnnlab does not load it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` (its folder made if missing), trimmed to its content, and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return path


def label_colours() -> np.ndarray:
    """256 x 3 uint8 RGB colours of class indices: Pascal VOC's palette (the bits of the index spread over the
    high bits of red, green and blue), so that 0 is black and 255, "ignore", is cream (224, 224, 192)."""
    colours = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r, g, b = r | ((c >> 0) & 1) << (7 - j), g | ((c >> 1) & 1) << (7 - j), b | ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours[i] = (r, g, b)
    return colours
