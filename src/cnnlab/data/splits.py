"""Fixed, stratified splits: the same images in the same part on every machine, whatever the run's seed.

Each class is split in the same proportion, from a permutation drawn by ``numpy.random.default_rng(seed)``
with a fixed seed per kind of split (:data:`TEST_SPLIT_SEED`, :data:`VAL_SPLIT_SEED`). A part never gets zero
images of a class while the fraction asks for some, and the rest never gets zero either: a class too small to
be split is a :class:`~cnnlab.errors.DataError` that says how many images it needs.
"""

from __future__ import annotations

import numpy as np

from cnnlab.errors import DataError

TEST_SPLIT_SEED = 0  # the train/test split of data sets that ship without one (mnist5k, a flat image folder)
VAL_SPLIT_SEED = 1  # the validation part carved from the training split
SUBSET_SEED = 2  # the N training images per class that a small-data run keeps (cnnlab.data.select)
DEFAULT_VAL_FRACTION = 0.1  # 10% of the training split: 400 of mnist5k's 4,000; 5,000 of CIFAR's 50,000 (He et al.)


def stratified_split(
    labels: np.ndarray, fraction: float, *, seed: int, what: str = "part", classes: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(rest, part): sorted indices into ``labels``, with ``fraction`` of each class in ``part``.

    Per class, ``part`` gets ``round(n * fraction)`` images, at least one when ``fraction > 0``; ``rest`` keeps
    at least one. ``what`` and ``classes`` name the part and the classes in the error of a class too small.
    """
    if not 0 <= fraction < 1:
        raise DataError(f"the {what} fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    rest, part = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_part = max(1, round(len(idx) * fraction)) if fraction > 0 else 0
        if n_part >= len(idx):
            name = classes[c] if classes is not None else str(c)
            raise DataError(
                f"class {name!r} has {len(idx)} image(s): too few to put {fraction:.0%} in the {what} split and keep "
                f"one for training; give it at least {n_part + 1} images (or a smaller fraction)"
            )
        part.append(idx[:n_part])
        rest.append(idx[n_part:])
    return np.sort(np.concatenate(rest)), np.sort(np.concatenate(part))
