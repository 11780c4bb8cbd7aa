"""`processing.align_task` (ARC inputs put at their answers' size) and where the data reads it: the composite's and
the recipe's split, the copy baselines of the main job's ARC table, and the composite cache key."""

import numpy as np
import pytest

from vision_trm.processing import align_task, aligned_input
from vision_trm.train_scripts.data_arc import arc_protocol_split
from vision_trm.train_scripts.data_sources import CompositeSpec


def upscaling_task(name="upscale") -> dict:
    """Every output is its input with each cell made a 2 x 2 block."""
    def pair(grid):
        return {"input": grid, "output": np.kron(np.asarray(grid), np.ones((2, 2), int)).tolist()}

    return {"id": name, "train": [pair([[1, 2], [3, 4]]), pair([[5], [6], [7]])], "test": [pair([[8, 9, 0]])]}


def tiling_task(name="tile") -> dict:
    def pair(grid):
        return {"input": grid, "output": np.tile(np.asarray(grid), (1, 3)).tolist()}

    return {"id": name, "train": [pair([[1, 2]]), pair([[3], [4]])], "test": [pair([[5, 6], [7, 8]])]}


def recolouring_task(name="recolour") -> dict:
    return {"id": name, "train": [{"input": [[1, 0]], "output": [[2, 0]]}, {"input": [[0, 1, 1]], "output": [[0, 2, 2]]}],
            "test": [{"input": [[1, 1]], "output": [[2, 2]]}]}


def test_every_input_of_an_upscaling_or_tiling_task_becomes_a_copy_of_its_answer():
    for task in (upscaling_task(), tiling_task()):
        original = {key: [dict(pair) for pair in task[key]] for key in ("train", "test")}
        aligned = align_task(task)
        for pair in aligned["train"] + aligned["test"]:
            assert pair["input"] == pair["output"]  # the rule is a pure resize: the aligned input is the answer
        assert [p["output"] for p in aligned["train"]] == [p["output"] for p in original["train"]]
        assert task["train"] == original["train"] and task["test"] == original["test"]  # the given task is untouched
        assert aligned["id"] == task["id"]


def test_a_task_whose_answers_keep_their_size_or_follow_no_scale_is_left_as_it_is():
    assert align_task(recolouring_task()) == recolouring_task()
    # Demonstrations that disagree on a size: the test input has no size to be aligned to.
    disagreeing = {"train": [{"input": [[1]], "output": [[1, 1]]}, {"input": [[1]], "output": [[1], [1], [1]]}],
                   "test": [{"input": [[7]]}]}
    assert align_task(disagreeing)["test"] == [{"input": [[7]]}]
    assert align_task({"train": [], "test": [{"input": [[3]]}]})["test"] == [{"input": [[3]]}]


def test_the_rule_is_the_one_most_demonstration_cells_follow_upscaling_over_tiling():
    # One demonstration of a 1-cell grid cannot tell upscaling from tiling; the 2-cell one can.
    demonstrations = [{"input": [[4]], "output": [[4, 4]]}, {"input": [[1, 2]], "output": [[1, 1, 2, 2]]}]
    assert aligned_input(demonstrations, [[5, 6]]).tolist() == [[5, 5, 6, 6]]
    demonstrations[1]["output"] = [[1, 2, 1, 2]]
    assert aligned_input(demonstrations, [[5, 6]]).tolist() == [[5, 6, 5, 6]]


def test_the_aligned_split_trains_on_aligned_inputs_and_keeps_the_given_input_for_the_copy_baseline():
    training, evaluation = [tiling_task("t1")], [upscaling_task("e1"), recolouring_task("e2")]
    plain_pairs, plain_heldout = arc_protocol_split(training, evaluation)
    pairs, heldout = arc_protocol_split(training, evaluation, align_inputs=True)
    assert [p["output"] for p in pairs] == [p["output"] for p in plain_pairs]
    assert all(p["input"] == p["output"] for p in pairs if p["task_name"] in ("t1", "e1"))
    assert [p["input"] for p in pairs if p["task_name"] == "e2"] == [p["input"] for p in plain_pairs
                                                                        if p["task_name"] == "e2"]
    upscale, recolour = heldout
    assert upscale["given_input"] == [[8, 9, 0]] and upscale["input"] == upscale["output"]
    assert upscale["scaled_or_tiled"] == upscale["output"] == plain_heldout[0]["scaled_or_tiled"]
    assert plain_heldout[0]["input"] == plain_heldout[0]["given_input"] == [[8, 9, 0]]
    assert recolour["input"] == recolour["given_input"] == recolour["scaled_or_tiled"] == [[1, 1]]
    assert training[0] == tiling_task("t1")  # the caller's tasks are not changed


def test_aligned_composites_are_cached_apart_and_the_plain_key_is_unchanged_by_the_field():
    import hashlib
    import json
    from dataclasses import asdict

    from vision_trm.train_scripts.data_sources import _BUILD_VERSION

    plain, aligned = CompositeSpec(), CompositeSpec(arc_input_alignment=True)
    assert plain.key() != aligned.key()
    # The field is left out of the plain payload, so builds made before it existed keep their cache: the key is the
    # hash of the fields the spec had before.
    before = {name: value for name, value in asdict(plain).items() if name != "arc_input_alignment"}
    payload = json.dumps({"version": _BUILD_VERSION, **before}, sort_keys=True, default=str)
    assert plain.key() == hashlib.sha256(payload.encode()).hexdigest()[:16]


@pytest.mark.parametrize("grid", [[], [[]], [[1], [2, 3]]])
def test_a_malformed_input_is_refused_naming_it(grid):
    with pytest.raises(ValueError, match="must be a non-empty 2-D grid"):
        aligned_input([{"input": [[1]], "output": [[1, 1]]}], grid)


def test_the_main_job_knows_the_models_alignment_before_it_builds_the_data(tmp_path, monkeypatch):
    """The composite is built before the model, so its ARC inputs follow the flag the model will have: from
    `--config_overrides`, else from a saved model, else from the preset."""
    from vision_trm.configuration import PRESETS, TRMConfig
    from vision_trm.train_scripts.run_multimodal import ModelArguments, configured_input_alignment

    assert configured_input_alignment(ModelArguments(preset="arc-tiny")) is False
    monkeypatch.setitem(PRESETS, "aligned-test-preset", {**PRESETS["arc-tiny"], "arc_input_alignment": True})
    assert configured_input_alignment(ModelArguments(preset="aligned-test-preset")) is True
    assert configured_input_alignment(ModelArguments(preset="aligned-test-preset",
                                                     config_overrides='{"arc_input_alignment": false}')) is False
    TRMConfig.from_preset("arc-tiny", arc_input_alignment=True).save_pretrained(tmp_path)
    assert configured_input_alignment(ModelArguments(model_name_or_path=str(tmp_path))) is True


def test_the_main_jobs_preset_reads_aligned_inputs_even_where_it_falls_back_to_tiny(monkeypatch):
    """`tiny-efficientnet` (the main job) aligns its ARC inputs; without the EfficientNet packages the main job falls
    back to `tiny`, which must read the composite as it was written for the preset asked for."""
    import sys

    from vision_trm.configuration import PRESETS
    from vision_trm.train_scripts.run_multimodal import ModelArguments, build_model, configured_input_alignment

    assert PRESETS["tiny-efficientnet"]["arc_input_alignment"] is True
    asked = ModelArguments(preset="tiny-efficientnet")
    assert configured_input_alignment(asked) is True
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # the import fails
    model, preset = build_model(asked, num_task_ids=3)
    assert preset == "tiny" and model.config.arc_input_alignment is True
