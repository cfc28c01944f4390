"""Reading image files: a clear error for a missing, unreadable or oversized file, never a raw traceback."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from cnnlab.errors import DataError

if TYPE_CHECKING:
    from cnnlab.data.transforms import InputPipeline

MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb threshold (Image.MAX_IMAGE_PIXELS), refused here as an error


def open_image(path: str | os.PathLike[str], *, mode: str | None) -> Any:
    """A PIL image in ``mode`` ("L" or "RGB"; None: as stored, for a mask's class indices); a DataError when the
    file is missing, not an image, or larger than :data:`MAX_PIXELS` (a decompression bomb would take gigabytes
    to decode)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise DataError(
                        f"{str(path)!r} is {img.width} x {img.height} pixels, more than the {MAX_PIXELS:,} "
                        f"cnnlab reads; resize it first"
                    )
                if mode is None:
                    img.load()
                    return img.copy()
                return img.convert(mode)
    except DataError:
        raise
    except FileNotFoundError as e:
        raise DataError(f"no image at {str(path)!r}") from e
    except IsADirectoryError as e:
        raise DataError(f"{str(path)!r} is a folder, not an image file") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{str(path)!r} is too large to read safely ({e}); resize it first") from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"cannot read {str(path)!r} as an image ({type(e).__name__}: {e})") from e


def load_images(paths: Sequence[str | os.PathLike[str]], pipeline: InputPipeline) -> Tensor:
    """N x C x H x W network inputs, each file read and transformed as the data set's test images are."""
    mode = "L" if pipeline.in_chans == 1 else "RGB"
    tf = pipeline.image_transforms()
    return torch.stack([tf(open_image(p, mode=mode)) for p in paths])
