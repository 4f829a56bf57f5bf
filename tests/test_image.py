import numpy as np
import pytest
import torch
from PIL import Image

from videochat_online.data.image import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    closest_tile_grid,
    dynamic_tiles,
    frames_to_pixel_values,
    load_image,
    to_pixel_values,
)
from videochat_online.errors import InputError


def test_pixel_values_are_imagenet_normalised_rgb():
    white = Image.new("RGB", (30, 20), (255, 255, 255))
    pixels = to_pixel_values(white, 28)
    assert pixels.shape == (3, 28, 28)
    for ch in range(3):
        assert torch.allclose(pixels[ch], torch.tensor((1 - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch]), atol=1e-5)
    red = np.zeros((10, 10, 3), dtype=np.uint8)
    red[..., 0] = 255
    batch = frames_to_pixel_values([red, Image.fromarray(red)], 14)
    assert batch.shape == (2, 3, 14, 14)
    assert torch.equal(batch[0], batch[1])
    assert batch[0, 0].mean() > 2 and batch[0, 1].mean() < -1  # red channel high, green low


@pytest.mark.parametrize("size, grid", [((448, 448), (1, 1)), ((900, 448), (2, 1)), ((448, 1400), (1, 3)),
                                        ((1600, 900), (4, 2)), ((800, 450), (2, 1)), ((4000, 1000), (4, 1))])
def test_closest_tile_grid(size, grid):
    assert closest_tile_grid(*size, tile=448, min_num=1, max_num=12) == grid


def test_tie_prefers_larger_grid_only_for_large_images():
    # aspect 1.0 ties between 1x1, 2x2 and 3x3: a large image takes the larger grid
    assert closest_tile_grid(2000, 2000, 448, 1, 12) == (3, 3)
    assert closest_tile_grid(300, 300, 448, 1, 12) == (1, 1)


def test_dynamic_tiles_cut_in_reading_order_plus_thumbnail():
    img = Image.new("RGB", (200, 100))
    img.paste((255, 0, 0), (0, 0, 100, 100))  # left half red, right half black
    tiles = dynamic_tiles(img, tile=50, max_num=4)
    assert len(tiles) == 3 and all(t.size == (50, 50) for t in tiles)  # 2x1 grid + thumbnail
    assert tiles[0].getpixel((25, 25)) == (255, 0, 0) and tiles[1].getpixel((25, 25)) == (0, 0, 0)
    assert len(dynamic_tiles(img, tile=50, max_num=4, use_thumbnail=False)) == 2
    assert len(dynamic_tiles(Image.new("RGB", (50, 50)), tile=50)) == 1  # one tile: no thumbnail


def test_load_image_errors(tmp_path):
    with pytest.raises(InputError, match="no such image file"):
        load_image(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(InputError, match=f"{bad}: not a readable image"):
        load_image(bad)
