"""The ARC recipe: device-side batches agree with the processor, the view is told to the model, task embeddings get
their own optimizer group, the weight EMA saves and resumes, and `run_multimodal.py --recipe arc` trains and
resumes end to end."""

import copy
import json

import numpy as np
import pytest
import torch
from transformers import TrainingArguments

from file_modules import REPO, load_file_module
from tiny_models import small_clip_config
from vision_trm.configuration import IDENTITY_AUGMENTATION, TRMConfig
from vision_trm.configuration.conventions import BACKGROUND_CLASS
from vision_trm.modeling_trm import TRMForMultitaskReasoning
from vision_trm.modeling_trm.cell_head import cell_labels_to_grids
from vision_trm.processing import TRMProcessor, transforms
from vision_trm.processing.grids import cell_label_map
from vision_trm.train_scripts import run_multimodal
from vision_trm.train_scripts.arc_batches import (
    ArcPairBank,
    ArcPairIndices,
    cell_maps,
    collate_pair_indices,
    parse_view_parts,
    random_colour_permutations,
    transform_grids,
)
from vision_trm.train_scripts.training import TRMTrainer, WeightEMACallback


def random_pairs(count: int, seed: int = 0, max_side: int = 30) -> list[dict]:
    rng = np.random.default_rng(seed)
    pairs = []
    for index in range(count):
        input_side, output_side = rng.integers(1, max_side + 1, 2), rng.integers(1, max_side + 1, 2)
        pairs.append({"input": rng.integers(0, 10, input_side).tolist(),
                      "output": rng.integers(0, 10, output_side).tolist(), "task_name": f"t{index % 3}"})
    return pairs


VOCABULARY = {"t0": 1, "t1": 2, "t2": 3}


@pytest.fixture(scope="module")
def arc_config():
    return TRMConfig.from_preset("arc-tiny", num_task_ids=4, hidden_size=32, num_attention_heads=2)


def test_transform_grids_agrees_with_the_processor_transforms():
    pairs = random_pairs(64)
    bank = ArcPairBank(pairs, VOCABULARY, 30)
    generator = torch.Generator().manual_seed(0)
    dihedral = torch.arange(64) % 8  # every transform, several times
    permutation = random_colour_permutations(64, generator)
    grids, sizes = transform_grids(bank.inputs, bank.input_sizes, dihedral, permutation)
    for b, pair in enumerate(pairs):
        expected = transforms.transform_grid(pair["input"], int(dihedral[b]), permutation[b].numpy())
        height, width = sizes[b].tolist()
        assert (height, width) == expected.shape
        assert np.array_equal(grids[b, :height, :width].numpy(), expected)
        assert (grids[b, height:] == -1).all() and (grids[b, :, width:] == -1).all()


def test_cell_maps_agree_with_cell_label_map():
    pairs = random_pairs(16, seed=1)
    bank = ArcPairBank(pairs, VOCABULARY, 30)
    corners = torch.tensor([[0, 0], [1, 0], [0, 1]] * 6)[:16]
    corners = torch.minimum(corners, 32 - bank.output_sizes - 2)
    maps = cell_maps(bank.outputs, bank.output_sizes, corners, 32)
    for b, pair in enumerate(pairs):
        assert np.array_equal(maps[b].numpy(), cell_label_map(pair["output"], 32, tuple(corners[b].tolist())))


def test_unaugmented_bank_batch_is_what_the_processor_returns(arc_config):
    pairs = random_pairs(6, seed=2)
    processor = TRMProcessor.from_config(arc_config)
    bank = ArcPairBank(pairs, VOCABULARY, arc_config.max_grid_size)
    batch = bank.batch(torch.arange(6), processor.image_processor, torch.Generator().manual_seed(0), augment=False)
    expected = processor([p["input"] for p in pairs], grid_targets=[p["output"] for p in pairs],
                         task_ids=[VOCABULARY[p["task_name"]] for p in pairs], augmentations=[None] * 6)
    for name in ("pixel_values", "modality_ids", "task_ids", "augmentation_ids", "cell_labels"):
        assert torch.allclose(batch[name].float(), expected[name].float(), atol=1e-6), name
    assert (batch["augmentation_ids"] == torch.tensor(IDENTITY_AUGMENTATION)).all()


def test_augmented_batch_undoes_to_the_original_pairs(arc_config):
    """Each row's target, read back from its cells and mapped through the inverse of its `augmentation_ids`, is the
    pair's output: the view the model is told is the view it is shown."""
    pairs = random_pairs(24, seed=3)
    processor = TRMProcessor.from_config(arc_config)
    bank = ArcPairBank(pairs, VOCABULARY, arc_config.max_grid_size)
    batch = bank.batch(torch.arange(24), processor.image_processor, torch.Generator().manual_seed(5))
    views = batch["augmentation_ids"]
    assert len({tuple(v.tolist()) for v in views}) > 20  # views differ between rows
    targets, _ = cell_labels_to_grids(batch["cell_labels"], arc_config.max_grid_size)
    for b, (grid, pair) in enumerate(zip(processor.post_process_grid(targets), pairs)):
        undone = transforms.inverse_transform_grid(grid, int(views[b, 0]), views[b, 1:].numpy())
        assert np.array_equal(undone, np.array(pair["output"]))


@pytest.mark.parametrize("parts", [(), ("dihedral",), ("colours",), ("translation",), ("dihedral", "colours")])
def test_view_parts_draw_only_the_named_parts_of_a_view(arc_config, parts):
    # The memorisation benchmark takes the view apart: each part left out stays the identity in every row.
    pairs = random_pairs(32, seed=6, max_side=8)
    processor = TRMProcessor.from_config(arc_config)
    bank = ArcPairBank(pairs, VOCABULARY, arc_config.max_grid_size)
    batch = bank.batch(torch.arange(32), processor.image_processor, torch.Generator().manual_seed(0),
                       view_parts=parts)
    views = batch["augmentation_ids"]
    assert (views[:, 0] != 0).any() == ("dihedral" in parts)
    assert (views[:, 1:] != torch.arange(10)).any() == ("colours" in parts)
    # A frame at the top-left corner has its corner cell (0, 0) labelled as frame, not background.
    frame_at_origin = batch["cell_labels"][:, 0, 0] != BACKGROUND_CLASS
    assert (~frame_at_origin).any() == ("translation" in parts)
    with pytest.raises(ValueError, match=r"\['rotation'\] are not parts of a view"):
        bank.batch(torch.arange(2), processor.image_processor, torch.Generator(), view_parts=("rotation",))


def test_copy_rows_target_their_own_input_under_task_zero(arc_config):
    pairs = random_pairs(64, seed=4)
    processor = TRMProcessor.from_config(arc_config)
    bank = ArcPairBank(pairs, VOCABULARY, arc_config.max_grid_size)
    batch = bank.batch(torch.arange(64), processor.image_processor, torch.Generator().manual_seed(0),
                       copy_fraction=0.5)
    copies = batch["task_ids"] == 0
    assert 16 < int(copies.sum()) < 48
    targets, _ = cell_labels_to_grids(batch["cell_labels"], arc_config.max_grid_size)
    for b, target in enumerate(processor.post_process_grid(targets)):
        views = batch["augmentation_ids"][b]
        original = np.array(pairs[b]["input"] if copies[b] else pairs[b]["output"])
        assert np.array_equal(transforms.inverse_transform_grid(target, int(views[0]), views[1:].numpy()), original)


def test_bank_refuses_pairs_without_a_task_id():
    with pytest.raises(ValueError, match="no task id"):
        ArcPairBank(random_pairs(2), {"t0": 1}, 30)


@pytest.mark.parametrize("colour", [10, -1])
def test_bank_checks_colours_once_when_built(colour):
    """Batches are drawn without reading values back from the GPU, so a colour outside 0..9 (which -1, the
    padding, would hide) is refused when the bank is built, naming the pair."""
    pairs = random_pairs(3)
    pairs[2]["output"][0][0] = colour
    with pytest.raises(ValueError, match=r"ARC pair 2: grid holds colours outside 0\.\.9"):
        ArcPairBank(pairs, VOCABULARY, 30)


def test_bank_refuses_a_canvas_too_small_for_its_largest_grid(arc_config):
    processor = TRMProcessor.from_config(arc_config)
    bank = ArcPairBank(random_pairs(2) + [{"input": [[1] * 31], "output": [[1]], "task_name": "t0"}], VOCABULARY, 31)
    with pytest.raises(ValueError, match="a grid of side 31 with its frame does not fit 32 cells"):
        bank.batch(torch.arange(3), processor.image_processor, torch.Generator().manual_seed(0))


def test_augmentation_tokens_change_the_prediction(arc_config):
    """With `use_augmentation_tokens` the model reads `augmentation_ids`; the base preset's model does not."""
    processor = TRMProcessor.from_config(arc_config)
    grids = [[[1, 2], [3, 4]]] * 2
    batch = processor(grids, task_ids=[1, 1])
    views = torch.tensor([IDENTITY_AUGMENTATION, (5, 0, 3, 1, 2, 4, 5, 6, 7, 8, 9)])
    for with_tokens in (True, False):
        config = TRMConfig.from_dict({**arc_config.to_dict(), "use_augmentation_tokens": with_tokens})
        model = TRMForMultitaskReasoning(config).eval()
        inputs = {name: batch[name] for name in ("pixel_values", "modality_ids", "task_ids")}
        plain = model.trm(**inputs).cell_logits
        told = model.trm(**inputs, augmentation_ids=views).cell_logits
        assert torch.allclose(plain[0], told[0], atol=1e-6)  # the identity view is the default
        assert torch.allclose(plain[1], told[1], atol=1e-6) is (not with_tokens)


def test_task_embeddings_are_zero_and_fill_their_prefix_positions(arc_config):
    model = TRMForMultitaskReasoning(arc_config)
    embeddings = model.trm.task_embeddings
    assert embeddings.weight.shape == (4, arc_config.num_task_prefix_tokens * arc_config.hidden_size)
    assert embeddings.weight.abs().sum() == 0
    assert embeddings(torch.tensor([1, 2])).shape == (2, arc_config.num_task_prefix_tokens, arc_config.hidden_size)


def _trainer(tmp_path, config, **kwargs):
    model = TRMForMultitaskReasoning(config)
    processor = TRMProcessor.from_config(config, task_vocabulary=VOCABULARY)
    bank = ArcPairBank(random_pairs(8, max_side=6), VOCABULARY, config.max_grid_size)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2, report_to="none",
                             learning_rate=1e-3, weight_decay=0.1, save_strategy="no", use_cpu=True,
                             remove_unused_columns=False)
    return TRMTrainer(model=model, args=args, train_dataset=ArcPairIndices(len(bank)),
                      data_collator=collate_pair_indices, processing_class=processor, arc_bank=bank, **kwargs)


def test_task_embeddings_get_their_own_learning_rate(tmp_path, arc_config):
    trainer = _trainer(tmp_path, arc_config, task_embedding_learning_rate=1e-2)
    optimizer = trainer.create_optimizer()
    task_weight = trainer.model.trm.task_embeddings.weight
    (group,) = [g for g in optimizer.param_groups if any(p is task_weight for p in g["params"])]
    assert group["lr"] == 1e-2 and group["weight_decay"] == 0.0 and len(group["params"]) == 1
    others = [g for g in optimizer.param_groups if g is not group]
    assert all(g["lr"] == 1e-3 for g in others) and sum(len(g["params"]) for g in others) > 10
    trainer.train()
    assert task_weight.abs().sum() > 0  # the zero-initialised rows moved


def test_arc_inputs_are_seeded_by_the_step(tmp_path, arc_config):
    trainer = _trainer(tmp_path, arc_config)
    indices = torch.arange(4)
    first = trainer._arc_inputs(indices)
    trainer._micro_batch_in_step = (-1, 0)  # as in a resumed run at the same step
    assert torch.equal(trainer._arc_inputs(indices)["pixel_values"], first["pixel_values"])
    trainer.state.global_step = 7
    assert not torch.equal(trainer._arc_inputs(indices)["augmentation_ids"], first["augmentation_ids"])


def test_trainer_draws_only_the_view_parts_of_the_models_config(tmp_path, arc_config):
    """`config.arc_view_parts = ["dihedral", "translation"]` reaches the batches: no colour permutation in any row,
    while the dihedral transform still varies; the default config keeps drawing colour permutations."""
    identity = torch.arange(10)
    without = copy.deepcopy(arc_config)
    without.arc_view_parts = ["dihedral", "translation"]
    without_colours, default = _trainer(tmp_path, without), _trainer(tmp_path, arc_config)
    seen_dihedral, seen_colours = set(), False
    for step in range(6):
        without_colours.state.global_step = default.state.global_step = step
        views = without_colours._arc_inputs(torch.arange(8))["augmentation_ids"]
        assert torch.equal(views[:, 1:], identity.expand(8, -1))
        seen_dihedral |= set(views[:, 0].tolist())
        seen_colours |= not torch.equal(default._arc_inputs(torch.arange(8))["augmentation_ids"][:, 1:],
                                        identity.expand(8, -1))
    assert len(seen_dihedral) > 1 and seen_colours


@pytest.mark.parametrize("text, parts", [("dihedral,translation", ("dihedral", "translation")), ("none", ()),
                                         (" colours , dihedral ", ("colours", "dihedral"))])
def test_view_parts_are_parsed(text, parts):
    assert parse_view_parts(text) == parts


@pytest.mark.parametrize("text, message", [("rotation", "rotation"), ("dihedral,dihedral", "at most once"),
                                           ("", "at most once")])
def test_bad_view_parts_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_view_parts(text)


@pytest.mark.parametrize("parts", [["rotation"], ["dihedral", "dihedral"], "dihedral"])
def test_bad_arc_view_parts_in_the_config_are_named(parts):
    with pytest.raises(ValueError, match="arc_view_parts must list each of"):
        TRMConfig(arc_view_parts=parts)


def test_weight_ema_averages_saves_and_resumes(tmp_path):
    model = torch.nn.Linear(3, 2)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none")

    class State:
        global_step = 0
        is_world_process_zero = True

    ema = WeightEMACallback(decay=0.5)
    ema.on_train_begin(args, State, None, model=model)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    State.global_step = 100  # past the warm-up: decay 0.5
    ema.on_step_end(args, State, None, model=model)
    assert torch.allclose(ema.average["weight"], start + 0.5)
    (tmp_path / "checkpoint-100").mkdir()
    ema.on_save(args, State, None)
    resumed = WeightEMACallback(decay=0.5, resume_from=str(tmp_path / "checkpoint-100"))
    resumed.on_train_begin(args, State, None, model=model)
    assert torch.allclose(resumed.average["weight"], start + 0.5)
    resumed.on_train_end(args, State, None, model=model)
    assert torch.allclose(model.weight, start + 0.5)  # what is saved after training is the average
    with pytest.raises(FileNotFoundError, match="ema.safetensors"):
        WeightEMACallback(resume_from=str(tmp_path)).on_train_begin(args, State, None, model=model)


def test_arc_recipe_trains_and_resumes(tmp_path, monkeypatch):
    """`--recipe arc` end to end on a few tasks: trains, saves in shards with an EMA checkpoint, resumes from
    `last`, and evaluates the held-out test inputs beside the copy baseline."""
    training = [{"id": f"train{i}", "train": [{"input": [[i % 10, 1]], "output": [[1, i % 10]]}] * 2,
                 "test": [{"input": [[2, 3]], "output": [[3, 2]]}]} for i in range(3)]
    evaluation = [{"id": "eval0", "train": [{"input": [[4, 5]], "output": [[5, 4]]}],
                   "test": [{"input": [[6, 7]], "output": [[7, 6]]}]}]
    monkeypatch.setattr(run_multimodal, "load_arc_tasks", lambda version: (training, evaluation))
    common = ["--recipe", "arc", "--output_dir", str(tmp_path / "run"), "--per_device_train_batch_size", "2",
              "--save_steps", "2", "--logging_steps", "1", "--max_train_minutes", "0", "--use_cpu", "True",
              "--config_overrides", json.dumps({"hidden_size": 16, "num_attention_heads": 2,
                                                "arc_view_parts": ["dihedral", "translation"]})]
    first = run_multimodal.main(common + ["--max_steps", "2", "--skip_final_eval", "True"])
    assert first["train"]["arc"]["steps_run"] == 2
    assert (tmp_path / "run" / "checkpoint-2" / "ema.safetensors").is_file()
    second = run_multimodal.main(common + ["--max_steps", "3", "--resume_from_checkpoint", "last"])
    assert second["train"]["arc"]["steps_run"] == 3 and second["train"]["arc"]["steps_this_call"] == 1
    assert first["arc_view_parts"] == second["arc_view_parts"] == ["dihedral", "translation"]  # recorded
    assert second["arc"]["copy_input"]["per_cell_accuracy"] == 0.0  # [[6, 7]] -> [[7, 6]]: every cell differs
    assert 0.0 <= second["arc"]["model"]["per_cell_accuracy"] <= 1.0
    saved = TRMForMultitaskReasoning.from_pretrained(tmp_path / "run")
    assert saved.config.use_augmentation_tokens and saved.config.num_task_ids == 5
    assert saved.config.arc_view_parts == ["dihedral", "translation"]  # evaluation and TTT read it from here


def test_arc_recipe_with_aligned_inputs_trains_on_them_and_scores_the_given_input_as_copy(tmp_path, monkeypatch):
    """With `arc_input_alignment` the recipe's pair bank holds each input upscaled to its answer's size, its
    held-out rows read the upscaled test input, and copy-the-input is still scored on the input as given."""
    def upscale(grid):
        return {"input": grid, "output": np.kron(np.asarray(grid), np.ones((2, 2), int)).tolist()}

    training = [{"id": "train0", "train": [upscale([[1, 2]]), upscale([[3], [4]])], "test": [upscale([[5]])]}]
    evaluation = [{"id": "eval0", "train": [upscale([[6, 7]])], "test": [upscale([[8, 9]])]}]
    monkeypatch.setattr(run_multimodal, "load_arc_tasks", lambda version: (training, evaluation))
    banks = []
    monkeypatch.setattr(run_multimodal, "ArcPairBank", lambda pairs, *args: banks.append(pairs) or ArcPairBank(
        pairs, *args))
    results = run_multimodal.main([
        "--recipe", "arc", "--output_dir", str(tmp_path / "run"), "--per_device_train_batch_size", "2",
        "--max_steps", "1", "--max_train_minutes", "0", "--use_cpu", "True", "--config_overrides",
        json.dumps({"hidden_size": 16, "num_attention_heads": 2, "arc_input_alignment": True})])
    assert [pair["input"] == pair["output"] for pair in banks[0]] == [True] * 4
    assert results["arc"]["copy_scaled_or_tiled"]["exact_match"] == 1.0
    assert results["arc"]["copy_input"]["exact_match"] == 0.0
    assert TRMForMultitaskReasoning.from_pretrained(tmp_path / "run").config.arc_input_alignment


def test_residual_fusion_starts_without_the_tower_and_learns_to_use_it():
    """`fusion_mode="residual"`: at initialisation the fused tokens are exactly the trainable ViT's (the gate is 0
    on every token), and the gate still receives a gradient, so training can switch the tower on token by token."""
    config = small_clip_config(fusion_mode="residual", pretrained_tower_image_size=64)
    model = TRMForMultitaskReasoning(config)
    pixel_values = torch.randn(2, 3, config.image_size, config.image_size)
    fused, gate = model.trm.fused_features(pixel_values)
    assert gate.shape == (2, config.num_patches_per_side ** 2) and gate.abs().max() == 0
    assert torch.equal(fused, model.trm.trainable_vit(pixel_values))
    fused.sum().backward()
    assert model.trm.fusion.gate_mlp[-1].weight.grad.abs().sum() > 0


def test_tower_image_size_must_not_shrink_the_canvas():
    with pytest.raises(ValueError, match="pretrained_tower_image_size"):
        TRMConfig.from_preset("arc-tower", pretrained_tower_image_size=32)


def test_evaluation_demos_phase_trains_on_those_demonstrations_alone():
    from vision_trm.train_scripts.data_arc import arc_protocol_split, select_training_pairs

    def task(name, demos, tests):
        pair = {"input": [[1]], "output": [[2]]}
        return {"id": name, "train": [pair] * demos, "test": [pair] * tests}

    pairs, heldout = arc_protocol_split([task("t1", 3, 1), task("t2", 2, 1)], [task("e1", 4, 2), task("e2", 1, 1)])
    assert len(select_training_pairs(pairs, "all")) == 3 + 1 + 2 + 1 + 4 + 1
    demos = select_training_pairs(pairs, "evaluation_demos")
    assert [p["task_name"] for p in demos] == ["e1"] * 4 + ["e2"]   # demonstrations only, never a test input
    assert len(heldout) == 3
    with pytest.raises(ValueError, match="training pairs must be one of"):
        select_training_pairs(pairs, "evaluation")
    with pytest.raises(ValueError, match="no evaluation demonstrations"):
        select_training_pairs([p for p in pairs if p["source"] == "training"], "evaluation_demos")


def test_arc_training_pairs_flag_is_validated():
    from vision_trm.train_scripts.run_multimodal import RecipeArguments

    with pytest.raises(ValueError, match="--arc_training_pairs must be one of"):
        RecipeArguments(recipe="arc", arc_training_pairs="demos")


def test_memorisation_benchmark_reports_its_fit_and_never_overwrites(tmp_path):
    bench = load_file_module("bench_arc_memorise", REPO / "benchmarks" / "bench_arc_memorise.py")
    output = tmp_path / "fit.json"
    argv = ["--tasks", "1", "--max_side", "6", "--steps", "2", "--eval_every", "1", "--views", "colours",
            "--set", "hidden_size=32", "--set", "num_attention_heads=2", "--output", str(output)]
    result = bench.main(argv)
    saved = json.loads(output.read_text())
    assert saved["view_parts"] == ["colours"] and saved["overrides"] == {"hidden_size": 32, "num_attention_heads": 2}
    assert [point["step"] for point in saved["curve"]] == [1, 2]
    assert result["pairs"] >= 2 and result["test_inputs"] >= 1  # the task's demonstrations and its test input
    assert all(0.0 <= value <= 1.0 for point in saved["curve"] for key in ("identity", "augmented", "test")
               for value in point[key])
    with pytest.raises(SystemExit):
        bench.main(argv)  # the output exists: refused, not overwritten
    assert json.loads(output.read_text()) == saved
    with pytest.raises(SystemExit):
        bench.main(["--views", "rotation"])
