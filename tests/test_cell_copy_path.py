"""The cell copy path: zero at initialisation, per-cell, and able to learn copying on its own."""

import pytest
import torch

from vision_trm.configuration import TRMConfig
from vision_trm.modeling_trm import TRMForMultitaskReasoning
from vision_trm.modeling_trm.cell_copy import CellCopyPath
from vision_trm.processing import TRMProcessor


def config_with_path(**overrides):
    overrides = {"cell_copy_path": True, **overrides}
    return TRMConfig.from_preset("tiny", heads=["grid"], grid_head_type="cells", cells_per_token=4, hidden_size=32,
                                 num_attention_heads=2, **overrides)


def random_grids(count, generator):
    sizes = torch.randint(1, 31, (count, 2), generator=generator)
    return [torch.randint(0, 10, (int(h), int(w)), generator=generator).tolist() for h, w in sizes]


def test_the_path_starts_at_zero_and_survives_save_and_load(tmp_path):
    model = TRMForMultitaskReasoning(config_with_path()).eval()
    batch = TRMProcessor.from_config(model.config)([[[1, 2], [3, 4]]])
    assert model.trm.cell_copy_path(batch["pixel_values"]).abs().max() == 0  # post_init keeps the zero start
    torch.nn.init.normal_(model.trm.cell_copy_path.mlp[-1].weight)
    model.save_pretrained(tmp_path)
    loaded = TRMForMultitaskReasoning.from_pretrained(tmp_path).eval()
    assert torch.allclose(loaded(**batch).cell_logits, model(**batch).cell_logits, atol=1e-5)


def test_its_logits_are_added_to_the_head_on_grid_rows_only():
    model = TRMForMultitaskReasoning(config_with_path()).eval()
    torch.nn.init.normal_(model.trm.cell_copy_path.mlp[-1].weight)
    batch = TRMProcessor.from_config(model.config)([[[1, 2], [3, 4]]])
    with_path = model(**batch).cell_logits
    copy = model.trm.cell_copy_path(batch["pixel_values"])
    model.trm.cell_copy_path = None
    assert torch.allclose(with_path, model(**batch).cell_logits + copy, atol=1e-5)


def test_each_cell_is_read_from_its_own_pixels_only():
    config = config_with_path()
    path = CellCopyPath(config)
    torch.nn.init.normal_(path.mlp[-1].weight)
    pixels = torch.randn(1, 3, 64, 64)
    changed = pixels.clone()
    changed[:, :, 6:8, 10:12] += 1.0  # cell (3, 5) of 2 px cells
    difference = (path(changed) - path(pixels)).abs().sum(-1)[0]
    assert difference[3, 5] > 0 and difference.sum() == difference[3, 5]


def test_on_its_own_it_learns_to_copy_random_grids():
    """The path alone (the network's logits held at zero) copies every cell of random grids after 150 steps: copying
    is one short function for it, as the copy benchmark asks of the whole model."""
    config = config_with_path()
    processor, path = TRMProcessor.from_config(config), CellCopyPath(config)
    optimizer = torch.optim.Adam(path.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(150):
        grids = random_grids(8, generator)
        batch = processor(grids, grid_targets=grids, random_placement=True, seed=int(torch.randint(1 << 30, (1,), generator=generator)))
        logits = path(batch["pixel_values"])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 2), batch["cell_labels"].flatten(), ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    grids = random_grids(16, torch.Generator().manual_seed(99))
    batch = processor(grids, grid_targets=grids, random_placement=True, seed=7)
    with torch.no_grad():
        predicted = path(batch["pixel_values"]).argmax(-1)
    labelled = batch["cell_labels"] != -100
    assert (predicted[labelled] == batch["cell_labels"][labelled]).float().mean() == 1.0


def test_the_path_needs_the_cell_head():
    with pytest.raises(ValueError, match="cell_copy_path .* needs grid_head_type='cells'"):
        TRMConfig.from_preset("tiny", cell_copy_path=True)
    with pytest.raises(ValueError, match="cell_copy_path must be True or False"):
        TRMConfig.from_preset("arc-tiny", cell_copy_path="yes")


def test_a_run_continued_with_the_path_added_starts_from_the_same_function(tmp_path):
    """`--model_name_or_path <run> --config_overrides '{"cell_copy_path": true}'` (continuing the GPU main run):
    the overrides apply to the loaded config (they used to be dropped in silence), the new path starts at zero."""
    from vision_trm.train_scripts.run_multimodal import ModelArguments, build_model

    saved = TRMForMultitaskReasoning(config_with_path(cell_copy_path=False, num_task_ids=3))
    saved.save_pretrained(tmp_path)
    batch = TRMProcessor.from_config(saved.config)([[[1, 2], [3, 4]]])
    model, _ = build_model(ModelArguments(model_name_or_path=str(tmp_path), config_overrides='{"cell_copy_path": true}'),
                           num_task_ids=3)
    assert model.trm.cell_copy_path is not None
    with torch.no_grad():
        assert torch.allclose(model.eval()(**batch).cell_logits, saved.eval()(**batch).cell_logits, atol=1e-5)
    with pytest.raises(ValueError, match=r"fields TRMConfig does not have: \['cell_copy_pth'\]"):
        build_model(ModelArguments(model_name_or_path=str(tmp_path), config_overrides='{"cell_copy_pth": true}'), 3)
    with pytest.raises(ValueError, match="cell_copy_path must be True or False"):
        build_model(ModelArguments(model_name_or_path=str(tmp_path), config_overrides='{"cell_copy_path": 1}'), 3)
