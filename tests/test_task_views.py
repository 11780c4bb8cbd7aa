"""One task-embedding row per (task, view) (`TRMConfig.num_task_views`), as TRM gives each augmented puzzle its own
embedding: the fixed view table, the row a sample reads, training and test-time training drawing only those views,
voting within them, and the errors that name the field."""

import copy
import json

import numpy as np
import pytest
import torch
from transformers import TrainingArguments

from vision_trm.configuration import IDENTITY_AUGMENTATION, TRMConfig
from vision_trm.configuration.conventions import standard_arc_views
from vision_trm.modeling_trm import TRMForMultitaskReasoning
from vision_trm.processing import TRMProcessor
from vision_trm.train_scripts.arc_batches import ArcPairBank, ArcPairIndices, collate_pair_indices
from vision_trm.train_scripts.arc_voting import model_voting_views, task_view_table, voting_views
from vision_trm.train_scripts.test_time_training import solve_arc_task, training_views
from vision_trm.train_scripts.training import TRMTrainer

VIEWS = 12
VOCABULARY = {"t0": 1, "t1": 2, "t2": 3}


@pytest.fixture(scope="module")
def config():
    return TRMConfig.from_preset("arc-tiny", num_task_ids=4, hidden_size=32, num_attention_heads=2,
                                 num_task_views=VIEWS)


def small_pairs(count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"input": rng.integers(0, 10, rng.integers(1, 7, 2)).tolist(),
             "output": rng.integers(0, 10, rng.integers(1, 7, 2)).tolist(), "task_name": f"t{i % 3}"}
            for i in range(count)]


def recipe_trainer(tmp_path, config, max_steps: int = 3) -> TRMTrainer:
    """The ARC recipe's trainer over 8 small pairs (task rows at their own learning rate, as the recipe)."""
    model = TRMForMultitaskReasoning(config)
    processor = TRMProcessor.from_config(config, task_vocabulary=VOCABULARY)
    bank = ArcPairBank(small_pairs(8), VOCABULARY, config.max_grid_size)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=max_steps,
                             report_to="none", learning_rate=1e-3, save_strategy="no", use_cpu=True,
                             remove_unused_columns=False)
    return TRMTrainer(model=model, args=args, train_dataset=ArcPairIndices(len(bank)),
                      data_collator=collate_pair_indices, processing_class=processor, arc_bank=bank,
                      task_embedding_learning_rate=1e-2)


def views_drawn(trainer, steps: int = 8) -> set:
    """The `augmentation_ids` rows the trainer's ARC batches show over `steps` optimizer steps."""
    seen = set()
    for step in range(steps):
        trainer.state.global_step = step
        seen |= {tuple(row) for row in trainer._arc_inputs(torch.arange(8))["augmentation_ids"].tolist()}
    return seen


def test_the_view_table_is_what_voting_votes_over():
    table = standard_arc_views(32)
    assert table.shape == (32, 11) and tuple(table[0]) == IDENTITY_AUGMENTATION
    assert len({tuple(row) for row in table}) == 32  # distinct views
    assert list(table[:8, 0]) == list(range(8)) and (table[:8, 1:] == np.arange(10)).all()
    for (dihedral, permutation), row in zip(voting_views(32), table):
        assert dihedral == row[0]
        assert np.array_equal(np.arange(10) if permutation is None else permutation, row[1:])
    assert (standard_arc_views(8, ["dihedral", "translation"])[:, 1:] == np.arange(10)).all()


def test_each_view_of_a_task_reads_its_own_row(config):
    model = TRMForMultitaskReasoning(config).eval()
    embeddings = model.trm.task_embeddings
    assert embeddings.weight.shape == (4 * VIEWS, config.num_task_prefix_tokens * config.hidden_size)
    table = torch.from_numpy(standard_arc_views(VIEWS))
    with torch.no_grad():
        embeddings.rows_per_task()[2, 5] = 1.0  # task 2, view 5 only
    views = table[[5, 5, 4, 0]]
    tasks = torch.tensor([2, 1, 2, 2])
    prefix = embeddings(tasks, views)
    assert prefix[0].abs().sum() > 0
    assert prefix[1:].abs().sum() == 0  # another task's view 5, another view of task 2, the identity view
    assert embeddings(torch.tensor([2]), None).abs().sum() == 0  # no views given: the identity view's row


def test_a_view_outside_the_table_is_an_error_naming_the_field(config):
    model = TRMForMultitaskReasoning(config).eval()
    processor = TRMProcessor.from_config(config)
    batch = processor([[[1, 2], [3, 4]]], task_ids=[1])
    outside = torch.tensor([(0, 0, 2, 1, 3, 4, 5, 6, 7, 8, 9)])
    assert not (torch.from_numpy(standard_arc_views(VIEWS)) == outside).all(1).any()
    inputs = {name: batch[name] for name in ("pixel_values", "modality_ids", "task_ids")}
    with pytest.raises(ValueError, match="num_task_views=12"):
        model(**inputs, augmentation_ids=outside)
    model(**inputs, augmentation_ids=torch.from_numpy(standard_arc_views(VIEWS)[7:8]))


def test_voting_stays_within_the_table(config):
    model = TRMForMultitaskReasoning(config)
    views = model_voting_views(model, VIEWS, seed=5)  # the seed does not move the views of the table
    for (dihedral, permutation), row in zip(views, standard_arc_views(VIEWS)):
        assert dihedral == row[0] and np.array_equal(np.arange(10) if permutation is None else permutation, row[1:])
    with pytest.raises(ValueError, match="num_task_views"):
        model_voting_views(model, VIEWS + 1)
    plain = TRMForMultitaskReasoning(TRMConfig.from_dict({**config.to_dict(), "num_task_views": 0}))
    assert len(model_voting_views(plain, 40)) == 40 and task_view_table(plain) is None


def test_the_recipe_draws_only_the_tables_views(tmp_path, config):
    trainer = recipe_trainer(tmp_path, config)
    seen = views_drawn(trainer)
    assert seen <= {tuple(row) for row in standard_arc_views(VIEWS)} and len(seen) > 4
    trainer.train()
    trained = trainer.model.trm.task_embeddings.rows_per_task().abs().sum(-1)  # [task, view]
    assert (trained[1:] > 0).sum() > 3 and trained[0].sum() == 0  # several (task, view) rows moved; "no task" not


def test_test_time_training_fits_the_rows_of_the_new_task(config):
    model = TRMForMultitaskReasoning(config).eval()
    with torch.no_grad():
        model.trm.task_embeddings.rows_per_task()[1] = torch.randn(VIEWS, model.trm.task_embeddings.embedding_dim)
    before = copy.deepcopy(model.state_dict())
    processor = TRMProcessor.from_config(config)
    pairs = small_pairs(3, seed=2)
    task = {"train": [{"input": p["input"], "output": p["output"]} for p in pairs], "test": [{"input": [[1, 2]]}]}
    result = solve_arc_task(model, processor, task, steps=3, num_views=VIEWS, seed=4)
    assert result.steps == 3 and len(result.attempts[0]) >= 1
    assert result.start == "mean of 1 trained rows"
    for name, value in model.state_dict().items():  # the caller's model is never changed
        assert torch.equal(value, before[name]), name
    with pytest.raises(ValueError, match="num_task_views"):
        solve_arc_task(model, processor, task, steps=0, num_views=VIEWS + 4)


@pytest.mark.parametrize("parts, views", [(["dihedral", "translation"], 9), (["translation"], 2)])
def test_more_task_views_than_the_view_parts_give_is_a_config_error(parts, views):
    with pytest.raises(ValueError, match=f"num_task_views={views}"):
        TRMConfig(arc_view_parts=parts, num_task_views=views)
    with pytest.raises(ValueError, match="num_task_views must be 0"):
        TRMConfig(num_task_views=-1)


def test_the_arc_recipe_saves_a_row_per_view_and_evaluation_reads_them(tmp_path, monkeypatch):
    from vision_trm.train_scripts import run_multimodal
    from vision_trm.train_scripts.evaluate_arc import evaluate_arc_tasks

    training = [{"id": f"train{i}", "train": [{"input": [[i % 10, 1]], "output": [[1, i % 10]]}] * 2,
                 "test": [{"input": [[2, 3]], "output": [[3, 2]]}]} for i in range(3)]
    evaluation = [{"id": "eval0", "train": [{"input": [[4, 5]], "output": [[5, 4]]}],
                   "test": [{"input": [[6, 7]], "output": [[7, 6]]}]}]
    monkeypatch.setattr(run_multimodal, "load_arc_tasks", lambda version: (training, evaluation))
    result = run_multimodal.main([
        "--recipe", "arc", "--output_dir", str(tmp_path / "run"), "--per_device_train_batch_size", "2",
        "--max_steps", "2", "--max_train_minutes", "0", "--use_cpu", "True", "--skip_final_eval", "True",
        "--config_overrides", json.dumps({"hidden_size": 16, "num_attention_heads": 2, "num_task_views": 4})])
    assert result["num_task_views"] == 4
    saved = TRMForMultitaskReasoning.from_pretrained(tmp_path / "run").eval()
    assert saved.trm.task_embeddings.weight.shape[0] == saved.config.num_task_ids * 4
    processor = TRMProcessor.from_pretrained(tmp_path / "run")
    summary, per_task = evaluate_arc_tasks(saved, processor, evaluation, num_views=4)
    assert summary["num_views"] == 4 and set(per_task) == {"eval0"}
    with pytest.raises(ValueError, match="num_task_views"):
        evaluate_arc_tasks(saved, processor, evaluation, num_views=8)


def test_training_views_without_rows_per_view_draw_the_table_and_share_one_row(tmp_path):
    """`arc_training_views=V`: the recipe draws only the first V voting views, but every view of a task reads the
    task's one row; test-time training draws from the same views."""
    config = TRMConfig.from_preset("arc-tiny", num_task_ids=4, hidden_size=32, num_attention_heads=2,
                                   arc_training_views=VIEWS)
    trainer = recipe_trainer(tmp_path, config, max_steps=1)
    model = trainer.model
    assert model.trm.task_embeddings.weight.shape[0] == 4  # no rows per view
    table = {tuple(row) for row in standard_arc_views(VIEWS)}
    seen = views_drawn(trainer)
    assert seen <= table and len(seen) > 4
    fitting = training_views(model, config.arc_view_parts)
    assert len(fitting) == VIEWS and {(d, *(range(10) if p is None else p)) for d, p in fitting} == table
    plain = TRMForMultitaskReasoning(TRMConfig.from_dict({**config.to_dict(), "arc_training_views": 0}))
    assert training_views(plain, config.arc_view_parts) is None and task_view_table(plain) is None


def test_training_views_and_task_views_must_agree():
    with pytest.raises(ValueError, match="arc_training_views=8: a model with num_task_views=4"):
        TRMConfig(num_task_views=4, arc_training_views=8)
    TRMConfig(num_task_views=4, arc_training_views=4)
    with pytest.raises(ValueError, match="arc_training_views=9"):
        TRMConfig(arc_view_parts=["dihedral", "translation"], arc_training_views=9)


@pytest.mark.parametrize("field", ["num_task_views", "arc_training_views"])
def test_the_main_job_refuses_fixed_view_tables(tmp_path, monkeypatch, field):
    """The main job's rows show views drawn at random, so a fixed table would be dropped without a word: refused."""
    from vision_trm.train_scripts import run_multimodal

    monkeypatch.setattr(run_multimodal, "build_composite", lambda spec, cache_dir=None: ({"train": []}, {"t0": 1}))
    with pytest.raises(ValueError, match=f"{field}=8 is for the ARC recipe"):
        run_multimodal.main(["--output_dir", str(tmp_path / "run"), "--preset", "tiny", "--max_steps", "1",
                             "--use_cpu", "True", "--config_overrides", json.dumps({field: 8})])
