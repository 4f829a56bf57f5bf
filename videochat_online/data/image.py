"""Images and frames to pixel values: RGB, bicubic resize, ImageNet normalisation (no torchvision). Still images
use InternVL's dynamic tiling (the closest grid of 448px tiles, at most `max_num`, plus a thumbnail when
tiled); video frames are always one tile.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Frame = Image.Image | np.ndarray  # a PIL image or an HxWx3 uint8 RGB array


MAX_PIXELS = 40_000_000  # the most pixels an image may have to be decoded (a 6000x6000 photo has 36 million)


def load_image(path: str | Path) -> Image.Image:
    """An RGB image from a file, or an InputError naming the file: not an image, or over MAX_PIXELS (its size is read
    from the header, before anything is decoded, so that a small file that would expand to gigabytes is refused)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such image file")
    return _checked_image(path, str(path))


def read_image(data: bytes, name: str, formats: Sequence[str] | None = None) -> Image.Image:
    """An RGB image from bytes (an upload), checked as `load_image` checks a file, `name` in its errors; `formats`:
    PIL's format names it may be in (None: any PIL reads)."""
    return _checked_image(io.BytesIO(data), name, formats)


def _checked_image(source, name: str, formats: Sequence[str] | None = None) -> Image.Image:
    try:
        with Image.open(source, formats=formats) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InputError(f"{name}: {width}x{height} pixels is over the limit of {MAX_PIXELS:,} pixels "
                                 "for an image")
            return image.convert("RGB")
    except Image.DecompressionBombError as err:  # PIL's own limit, when the header alone says so
        raise InputError(f"{name}: refused as a decompression bomb ({err})") from None
    except UnidentifiedImageError:
        kinds = f" ({' or '.join(formats)})" if formats else ""
        raise InputError(f"{name}: not a readable image{kinds}") from None
    except OSError as err:  # a truncated or corrupt file
        raise InputError(f"{name}: not a readable image ({err})") from None


def to_pixel_values(frame: Frame, size: int) -> torch.Tensor:
    """One frame -> normalised pixel values [3, size, size]."""
    image = Image.fromarray(frame) if isinstance(frame, np.ndarray) else frame
    image = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)  # [S, S, 3]
    return ((pixels - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)).permute(2, 0, 1).contiguous()  # [3, S, S]


def frames_to_pixel_values(frames: Sequence[Frame], size: int) -> torch.Tensor:
    """Frames -> pixel values [B, 3, size, size] (PIL on the CPU, one frame at a time)."""
    return torch.stack([to_pixel_values(f, size) for f in frames])


def frames_to_pixel_values_on(frames: Sequence[np.ndarray], size: int, device: str | torch.device) -> torch.Tensor:
    """Frames (HxWx3 uint8 arrays of one shape) -> pixel values [B, 3, size, size] computed on `device`: only
    uint8 crosses, and PIL's resize is done in torch (antialiased bicubic, width then height, each pass rounded
    to uint8 as PIL's are), so it agrees with `frames_to_pixel_values` to one uint8 level per pixel."""
    batch = torch.from_numpy(np.stack(frames)).to(device, non_blocking=True)  # [B, H, W, 3] uint8
    x = batch.permute(0, 3, 1, 2).float()  # [B, 3, H, W]
    for shape in ((x.shape[2], size), (size, size)):  # [B, 3, H, S], then [B, 3, S, S]
        if tuple(x.shape[2:]) != shape:
            x = torch.nn.functional.interpolate(x, size=shape, mode="bicubic", align_corners=False, antialias=True)
            x = x.round().clamp(0, 255)
    x = x / 255.0
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def closest_tile_grid(width: int, height: int, tile: int, min_num: int, max_num: int) -> tuple[int, int]:
    """(columns, rows) of the tile grid whose aspect ratio is closest to the image's; candidates go by tile count,
    and on a tie the larger grid wins when the image has more than half its pixel area (InternVL's rule)."""
    candidates = sorted({(i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
                         if min_num <= i * j <= max_num}, key=lambda r: r[0] * r[1])
    aspect = width / height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in candidates:
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and width * height > 0.5 * tile * tile * cols * rows:
            best = (cols, rows)
    return best


def dynamic_tiles(image: Image.Image, tile: int, min_num: int = 1, max_num: int = 12,
                  use_thumbnail: bool = True) -> list[Image.Image]:
    """Cut an image into `tile`-sized tiles on its closest grid (+ a thumbnail when tiled)."""
    cols, rows = closest_tile_grid(image.width, image.height, tile, min_num, max_num)
    resized = image.resize((cols * tile, rows * tile), Image.Resampling.BICUBIC)
    tiles = [resized.crop((c * tile, r * tile, (c + 1) * tile, (r + 1) * tile))
             for r in range(rows) for c in range(cols)]
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((tile, tile), Image.Resampling.BICUBIC))
    return tiles
