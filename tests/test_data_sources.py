"""Data pipeline: ARC protocol split, by-book KJV split, composite determinism, clear errors on bad data files."""

import gzip

import numpy as np
import pytest

from vision_trm.train_scripts.data_arc import (
    arc_protocol_split,
    arc_rows,
    build_task_vocabulary,
    colour_permutation,
    inverse_transform_grid,
    load_arc_tasks,
    transform_grid,
)
from vision_trm.train_scripts.data_images import DataFileError, load_fashion_mnist, read_idx
from vision_trm.train_scripts.data_sources import build_composite
from vision_trm.train_scripts.data_text import (
    KJV_BOOKS,
    KJV_TEST_BOOKS,
    KJV_VALIDATION_BOOKS,
    TextFileError,
    kjv_splits,
    read_kjv_dump,
)


@pytest.fixture(scope="module")
def arc():
    training, evaluation = load_arc_tasks("1")
    return training, evaluation


def test_arc_protocol_never_trains_on_eval_test_inputs(arc):
    training, evaluation = arc
    assert len(training) == 400 and len(evaluation) == 400
    vocabulary = build_task_vocabulary(training, evaluation)
    assert sorted(vocabulary.values()) == list(range(1, 801))
    train_pairs, heldout = arc_protocol_split(training, evaluation)
    assert len(heldout) == sum(len(t["test"]) for t in evaluation) == 419
    trained = {(p["task_name"], str(p["input"])) for p in train_pairs}
    for item in heldout:
        assert (item["task_name"], str(item["input"])) not in trained, item["task_name"]
    # Also across the augmented rows actually written to the composite (any task, any dihedral x colour view
    # of a training pair is checked against the held-out inputs' own task).
    eval_names = {t["id"] for t in evaluation}
    eval_demo_inputs = {(p["task_name"], str(p["input"])) for p in train_pairs if p["task_name"] in eval_names}
    demos = sum(len(t["train"]) for t in evaluation)
    assert len([p for p in train_pairs if p["source"] == "evaluation-demo"]) == demos
    assert all(p["source"] == "evaluation-demo" for p in train_pairs if p["task_name"] in eval_names)
    rows = list(arc_rows([p for p in train_pairs if p["task_name"] in eval_names][:200], vocabulary, 4, seed=0))
    heldout_inputs = {(h["task_name"], str(h["input"])) for h in heldout}
    viewed = {(r["task_name"], str(transform_grid(r["input_grid"], r["augmentation"][0],
                                                  np.array(r["augmentation"][1:])).tolist())) for r in rows}
    assert len(viewed) > len(rows) // 4, "the rows' views must differ"
    assert not viewed & heldout_inputs
    assert eval_demo_inputs.isdisjoint(heldout_inputs)
    assert all(r["task_id"] == vocabulary[r["task_name"]] for r in rows)


def test_augmentations_invert():
    rng = np.random.default_rng(0)
    grid = np.arange(12).reshape(3, 4) % 10
    for d in range(8):
        perm = colour_permutation(rng)
        assert perm[0] == 0
        np.testing.assert_array_equal(inverse_transform_grid(transform_grid(grid, d, perm), d, perm), grid)


def test_kjv_split_by_book_is_disjoint_and_complete():
    splits = kjv_splits()
    names = [set(splits[s]) for s in ("train", "validation", "test")]
    assert not names[0] & names[1] and not names[0] & names[2] and not names[1] & names[2]
    assert set().union(*names) == set(KJV_BOOKS) and len(KJV_BOOKS) == 66
    assert names[1] == set(KJV_VALIDATION_BOOKS) and names[2] == set(KJV_TEST_BOOKS)
    assert splits["test"]["Josh"].startswith("Now after the death of Moses")
    train_text = " ".join(splits["train"].values())
    assert splits["test"]["Luke"][:200] not in train_text


def test_missing_fashion_file_names_the_file(tmp_path):
    with pytest.raises(DataFileError, match="t10k-images-idx3-ubyte.gz not found.*apt-get install dataset-fashion"):
        load_fashion_mnist("test", directory=tmp_path)


def test_corrupt_fashion_file_names_the_file(tmp_path):
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(b"not a gzip file at all")
    with pytest.raises(DataFileError, match=str(bad) + ".*corrupt"):
        read_idx(bad)
    truncated = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(truncated, "wb") as handle:
        handle.write(b"\x00\x00\x08\x01\x00\x00\x00\x10" + b"\x01" * 3)  # says 16 labels, holds 3
    with pytest.raises(DataFileError, match=str(truncated)):
        read_idx(truncated)


def test_missing_or_corrupt_kjv_file_names_the_file(tmp_path, monkeypatch):
    missing = tmp_path / "kjv.txt"
    with pytest.raises(TextFileError, match=str(missing)):
        read_kjv_dump(missing)
    missing.write_text("Ge1:1 In the beginning God created the heaven and the earth.\n")
    monkeypatch.setenv("VISION_TRM_KJV_PATH", str(missing))
    with pytest.raises(TextFileError, match=f"{missing}.*lacks books"):
        kjv_splits()


def test_fashion_mnist_reads():
    images, labels = load_fashion_mnist("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert sorted(np.unique(labels)) == list(range(10))


def test_composite_is_deterministic_and_cached(tmp_path):
    kwargs = dict(max_samples_per_source=60, max_eval_samples=10, arc_augmentations=2, seed=3)
    first, vocabulary = build_composite(cache_dir=tmp_path / "a", **kwargs)
    second, _ = build_composite(cache_dir=tmp_path / "b", **kwargs)
    assert first["train"]["source"] == second["train"]["source"]
    assert first["train"]["input_grid"] == second["train"]["input_grid"]
    assert len(vocabulary) == 800
    cached, _ = build_composite(cache_dir=tmp_path / "a", **kwargs)  # loaded from disk
    assert cached["train"]["source"] == first["train"]["source"]
    other, _ = build_composite(cache_dir=tmp_path / "a", **{**kwargs, "seed": 4})
    assert other["train"]["source"] != first["train"]["source"]
    assert set(first["train"]["modality"]) == {0, 1, 2}
    assert len(first["arc_eval"]) == 419  # the held-out ARC split is always complete
    assert all(s.startswith("arc-eval:") for s in first["arc_eval"]["source"])
