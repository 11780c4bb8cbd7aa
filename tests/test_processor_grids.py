"""Grid renderer/decoder and the dihedral / colour transforms (property tests with hypothesis)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vision_trm.processing import (
    ARC_PALETTE,
    BACKGROUND_COLOR,
    BORDER_COLOR,
    TRMProcessor,
    color_permutation_inverse,
    decode_canvas,
    dihedral_inverse,
    dihedral_transform,
    grid_placement,
    inverse_transform_grid,
    inverse_transform_task,
    max_scale,
    pad_grid,
    random_color_permutation,
    render_grid,
    transform_grid,
    transform_task,
    unpad_grid,
    validate_color_permutation,
)

CANVAS_SIZES = (64, 224)


@st.composite
def grids(draw, max_side=30):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(0, 10, size=(h, w))


@st.composite
def placed_grids(draw):
    size = draw(st.sampled_from(CANVAS_SIZES))
    grid = draw(grids())
    h, w = grid.shape
    scale = draw(st.integers(1, max_scale(h, w, size)))
    top = draw(st.integers(0, size - (h + 2) * scale))
    left = draw(st.integers(0, size - (w + 2) * scale))
    return grid, size, scale, (top, left)


def test_palette_border_background_distinct():
    colours = {tuple(c) for c in ARC_PALETTE.tolist()}
    assert len(colours) == 10
    assert tuple(BORDER_COLOR) not in colours and tuple(BACKGROUND_COLOR) not in colours
    assert tuple(BORDER_COLOR) != tuple(BACKGROUND_COLOR)


@settings(max_examples=150, deadline=None)
@given(placed_grids())
def test_grid_canvas_grid_identity_any_scale_offset(case):
    grid, size, scale, offset = case
    canvas = render_grid(grid, size, scale=scale, offset=offset)
    assert canvas.shape == (size, size, 3) and canvas.dtype == np.uint8
    np.testing.assert_array_equal(decode_canvas(canvas, strict=True), grid)
    assert grid_placement(canvas) == (scale, offset)


@settings(max_examples=60, deadline=None)
@given(grids(), st.sampled_from(CANVAS_SIZES))
def test_default_placement_round_trip_and_list_input(grid, size):
    canvas = render_grid(grid.tolist(), size)
    np.testing.assert_array_equal(decode_canvas(canvas), grid)
    np.testing.assert_array_equal(decode_canvas(canvas.transpose(2, 0, 1)), grid)  # channel-first accepted


def test_every_size_fits_both_canvases_and_cells_are_integer_blocks():
    for size in CANVAS_SIZES:
        for h in range(1, 31):
            grid = np.full((h, 31 - h), 3)
            canvas = render_grid(grid, size)
            np.testing.assert_array_equal(decode_canvas(canvas, strict=True), grid)
    canvas = render_grid(np.array([[1]]), 64, scale=5, offset=(0, 0))
    assert (canvas[5:10, 5:10] == ARC_PALETTE[1]).all()  # one 5x5 block after a 5 px border
    assert (canvas[0:5, 0:15] == BORDER_COLOR).all() and (canvas[20:, 20:] == BACKGROUND_COLOR).all()
    assert max_scale(30, 30, 64) == 2 and max_scale(30, 30, 224) == 7


def test_default_is_centred_largest_scale():
    scale, (top, left) = grid_placement(render_grid(np.zeros((3, 5), int), 64))
    assert scale == 64 // 7
    assert top == (64 - 5 * scale) // 2 and left == (64 - 7 * scale) // 2


def test_bad_placements_and_corrupt_canvas():
    with pytest.raises(ValueError, match="needs"):
        render_grid(np.zeros((30, 30), int), 64, scale=3)
    with pytest.raises(ValueError, match="outside"):
        render_grid(np.zeros((2, 2), int), 64, scale=2, offset=(60, 0))
    with pytest.raises(ValueError, match="no grid frame"):
        decode_canvas(np.full((64, 64, 3), 255, np.uint8))
    canvas = render_grid(np.zeros((3, 3), int), 64)
    canvas[30, 30] = (1, 2, 3)
    with pytest.raises(ValueError):
        decode_canvas(canvas, strict=True)


def test_pad_unpad():
    g = np.arange(6).reshape(2, 3)
    padded = pad_grid(g)
    assert padded.shape == (30, 30) and (padded[2:] == -100).all()
    np.testing.assert_array_equal(unpad_grid(padded), g)


@settings(max_examples=100, deadline=None)
@given(grids(), st.integers(0, 7), st.integers(0, 2**32 - 1))
def test_transform_then_inverse_is_identity(grid, d, seed):
    perm = random_color_permutation(np.random.default_rng(seed))
    assert perm[0] == 0
    np.testing.assert_array_equal(dihedral_transform(dihedral_transform(grid, d), dihedral_inverse(d)), grid)
    np.testing.assert_array_equal(inverse_transform_grid(transform_grid(grid, d, perm), d, perm), grid)
    np.testing.assert_array_equal(color_permutation_inverse(color_permutation_inverse(perm)), perm)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(grids(12), grids(12)), min_size=1, max_size=3), grids(12), st.integers(0, 7), st.integers(0, 99))
def test_task_transform_then_inverse_is_identity(pairs, test_input, d, seed):
    task = {
        "train": [{"input": a.tolist(), "output": b.tolist()} for a, b in pairs],
        "test": [{"input": test_input.tolist()}],
        "task_id": "t",
    }
    perm = random_color_permutation(np.random.default_rng(seed))
    assert inverse_transform_task(transform_task(task, d, perm), d, perm) == task


def test_dihedral_group_is_eight_distinct_transforms():
    g = np.arange(6).reshape(2, 3) % 10
    images = {dihedral_transform(g, d).tobytes() + bytes(dihedral_transform(g, d).shape) for d in range(8)}
    assert len(images) == 8
    with pytest.raises(ValueError):
        dihedral_transform(g, 8)


def test_bad_colour_permutations():
    with pytest.raises(ValueError, match="fixed"):
        validate_color_permutation([1, 0, 2, 3, 4, 5, 6, 7, 8, 9])
    with pytest.raises(ValueError, match="not a permutation"):
        validate_color_permutation([0, 1, 1, 3, 4, 5, 6, 7, 8, 9])


def test_draw_grid_is_a_palette_image_for_people():
    image = TRMProcessor.draw_grid([[1, 2], [3, 4]], max_px=64)
    cell = 32  # 64 px // 2 cells
    assert image.dtype == np.uint8 and image.shape == (2 * cell + 1, 2 * cell + 1, 3)
    for (row, col), colour in np.ndenumerate(np.array([[1, 2], [3, 4]])):
        centre = image[row * cell + cell // 2, col * cell + cell // 2]
        assert tuple(centre) == tuple(ARC_PALETTE[colour])
    assert (image[::cell, :] == 60).all() and (image[:, ::cell] == 60).all()  # grid lines, outer frame included
    big = TRMProcessor.draw_grid(np.zeros((30, 30), np.int64), max_px=240)
    assert big.shape == (241, 241, 3)  # 8 px cells
    with pytest.raises(ValueError, match="colour outside 0-9"):
        TRMProcessor.draw_grid([[1, 10]])
    with pytest.raises(ValueError, match="ragged"):
        TRMProcessor.draw_grid([[1, 2], [3]])
