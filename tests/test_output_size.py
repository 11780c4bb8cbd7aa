"""The output size from a task's demonstrations, and decoding held to a known size."""

import numpy as np
import pytest
import torch

from vision_trm.configuration import NUM_CELL_CLASSES
from vision_trm.modeling_trm.cell_head import decode_cell_logits
from vision_trm.processing import output_size_from_demonstrations, transforms
from vision_trm.processing.grids import cell_label_map
from vision_trm.train_scripts.arc_voting import demonstrated_output_sizes, size_in_view

TOKENS = 32


def pair(input_shape, output_shape):
    return {"input": np.zeros(input_shape, int).tolist(), "output": np.ones(output_shape, int).tolist()}


@pytest.mark.parametrize("demonstrations, test_shape, expected", [
    ([pair((3, 4), (3, 4)), pair((5, 2), (5, 2))], (7, 6), (7, 6)),            # kept
    ([pair((3, 4), (2, 2)), pair((9, 9), (2, 2))], (7, 6), (2, 2)),            # fixed
    ([pair((3, 4), (6, 12)), pair((2, 2), (4, 6))], (5, 3), (10, 9)),          # scaled 2x by 3x
    ([pair((6, 9), (2, 3)), pair((3, 3), (1, 1))], (9, 6), (3, 2)),            # scaled by 1/3
    ([pair((6, 9), (2, 3)), pair((3, 3), (1, 1))], (4, 6), None),              # 4/3 rows: not whole
    ([pair((3, 4), (2, 2)), pair((9, 9), (3, 3))], (7, 6), None),              # no common rule
    ([pair((2, 2), (20, 20)), pair((3, 3), (30, 30))], (4, 4), None),          # 40 x 40: over the largest grid
])
def test_the_demonstrations_size_rule(demonstrations, test_shape, expected):
    assert output_size_from_demonstrations(demonstrations, np.zeros(test_shape, int).tolist()) == expected


def test_the_size_rule_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match="at least one demonstration"):
        output_size_from_demonstrations([], [[1]])
    with pytest.raises(ValueError, match="demonstration 0 output must be a non-empty 2-D grid"):
        output_size_from_demonstrations([{"input": [[1]], "output": []}], [[1]])


def test_the_rule_is_applied_per_test_input_and_only_on_request():
    task = {"train": [pair((3, 4), (6, 8)), pair((1, 1), (2, 2))], "test": [{"input": np.zeros((2, 5)).tolist()},
                                                      {"input": np.zeros((15, 1)).tolist()}]}
    assert demonstrated_output_sizes(task) == [(4, 10), (30, 2)]
    assert demonstrated_output_sizes(task, use=False) == [None, None]
    assert demonstrated_output_sizes({"test": task["test"]}) == [None, None]   # no demonstrations, no rule


@pytest.mark.parametrize("dihedral", range(8))
def test_a_size_in_a_view_is_the_transformed_grids_size(dihedral):
    grid = np.arange(12).reshape(3, 4) % 10
    assert size_in_view((3, 4), dihedral) == transforms.dihedral_transform(grid, dihedral).shape
    assert size_in_view(None, dihedral) is None


def confident_logits_of(grid, offset, tokens=TOKENS):
    labels = torch.from_numpy(cell_label_map(np.asarray(grid), tokens, offset))[None]
    noise = torch.randn(1, tokens, tokens, NUM_CELL_CLASSES, generator=torch.Generator().manual_seed(0))
    return 0.5 * noise + 4.0 * torch.nn.functional.one_hot(labels, NUM_CELL_CLASSES)


def test_a_known_size_holds_the_decoding_to_boxes_of_that_size():
    grid = np.random.default_rng(0).integers(0, 10, (5, 7))
    logits = confident_logits_of(grid, (3, 2)).repeat(3, 1, 1, 1)
    sizes = torch.tensor([[0, 0], [3, 4], [30, 30]])   # free; held to 3 x 4; held to 30 x 30
    grids, boxes = decode_cell_logits(logits, 30, sizes)
    assert boxes[0].tolist() == [3, 2, 5, 7]             # the frame the logits draw
    assert boxes[1, 2:].tolist() == [3, 4] and boxes[2].tolist() == [0, 0, 30, 30]
    assert (grids[1, :3, :4] >= 0).all() and (grids[1, 3:] < 0).all() and (grids[1, :, 4:] < 0).all()
    free, _ = decode_cell_logits(logits, 30)
    assert torch.equal(free[0], grids[0])


def test_a_size_whose_frame_cannot_fit_leaves_the_decoding_free():
    logits = confident_logits_of(np.ones((5, 7), int), (1, 1), tokens=12)   # a cropped 12 x 12 canvas
    free, free_boxes = decode_cell_logits(logits, 30)
    held, held_boxes = decode_cell_logits(logits, 30, torch.tensor([[11, 3]]))   # 13 rows with the frame
    assert free_boxes.tolist() == held_boxes.tolist() == [[1, 1, 5, 7]] and torch.equal(free, held)


def test_sizes_must_match_the_samples():
    with pytest.raises(ValueError, match="sizes must have shape"):
        decode_cell_logits(torch.randn(2, TOKENS, TOKENS, NUM_CELL_CLASSES), 30, torch.zeros(3, 2, dtype=torch.long))
