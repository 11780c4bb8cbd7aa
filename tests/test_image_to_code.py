"""Image → code: the generator is deterministic, every generated program parses and renders, render-back is 1.0 for
the truth and lower for a perturbed program, hostile predictions are refused and never executed, the composite
builder yields the splits, and one training step runs through the collator."""

import numpy as np
import pytest
import torch

from vision_trm.modeling_trm import TRMForMultitaskReasoning
from vision_trm.processing import TRMProcessor
from vision_trm.train_scripts.collator import MultimodalCollator
from vision_trm.train_scripts.data_sources import CompositeSpec, build_composite
from vision_trm.train_scripts.evaluation import load_metric
from vision_trm.train_scripts.image_to_code import KINDS, SpecError, is_valid, render_program, try_render
from vision_trm.train_scripts.image_to_code.baselines import NearestNeighbourBaseline, TemplateBaseline, row_image
from vision_trm.train_scripts.image_to_code.chart_spec import parse_chart
from vision_trm.train_scripts.image_to_code.dataset import kind_of
from vision_trm.train_scripts.image_to_code.generator import MAX_CODE_CHARS, generate_programs, program
from vision_trm.train_scripts.image_to_code.similarity import ssim
from vision_trm.train_scripts.image_to_code.task import check_decoder_length, parse_counts, task_sources
from vision_trm.train_scripts.image_to_code.ui_spec import parse_ui

COUNTS = {"train": 6, "validation": 2, "test": 2}
TRUTH = {
    "ui": '<div style="background:navy;display:flex"><button style="background:orange">Save</button>'
          '<p style="color:white">Hello</p></div>',
    "chart": 'plt.bar(["A","B","C"],[3,7,2],color="red")\nplt.title("Sales")',
    "code": "def add(a, b):\n    return a + b",
}
PERTURBED = {
    "ui": TRUTH["ui"].replace("orange", "green"),
    "chart": TRUTH["chart"].replace("[3,7,2]", "[3,7,5]"),
    "code": TRUTH["code"].replace("+", "-"),
}


@pytest.fixture(scope="module")
def image_to_code_data(tmp_path_factory):
    spec = CompositeSpec(sources=("image_to_code",), weights=(1.0,), seed=0, extra={"image_to_code": COUNTS})
    data, vocabulary = build_composite(spec, cache_dir=tmp_path_factory.mktemp("cache"))
    assert vocabulary == {"image_to_code:ui": 1, "image_to_code:chart": 2, "image_to_code:code": 3}
    return data, vocabulary


def test_generator_is_deterministic_and_seeded():
    first, again = generate_programs(COUNTS, seed=5), generate_programs(COUNTS, seed=5)
    assert first == again
    for pair in first["train"][:3] + first["test"]:
        assert np.array_equal(pair.image(), render_program(pair.kind, pair.code))
    other = generate_programs(COUNTS, seed=6)
    assert [p.code for p in other["train"]] != [p.code for p in first["train"]]


def test_splits_are_filled_and_disjoint():
    pairs = generate_programs({"train": 40, "validation": 10, "test": 10}, seed=0)
    for split, count in (("train", 40), ("validation", 10), ("test", 10)):
        for kind in KINDS:
            assert sum(p.kind == kind for p in pairs[split]) == count
    codes = {split: {p.code for p in pairs[split]} for split in pairs}
    assert len(codes["train"]) == 120  # no repeats within a split
    assert not codes["train"] & codes["test"] and not codes["train"] & codes["validation"]
    assert not codes["validation"] & codes["test"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_generated_program_parses_renders_and_fits(kind):
    codes = {program(kind, seed=0, index=i) for i in range(150)}
    assert len(codes) > 100, "the generator should rarely repeat itself"
    for code in codes:
        assert len(code) <= MAX_CODE_CHARS
        KINDS[kind].parse(code)  # raises SpecError if outside the language
        image = render_program(kind, code)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert image.std() > 0, f"{code!r} renders as a blank image"


def test_render_back_is_one_for_the_truth_and_lower_for_a_perturbed_program():
    metric = load_metric("code_render_back")
    kinds = list(TRUTH)
    truth = metric.compute(predictions=[TRUTH[k] for k in kinds], references=[TRUTH[k] for k in kinds], kinds=kinds)
    assert truth["render_back"] == 1.0 and truth["exact_match"] == 1.0 and truth["valid_rate"] == 1.0
    assert truth["render_exact"] == 1.0
    for kind in kinds:
        perturbed = metric.compute(predictions=[PERTURBED[kind]], references=[TRUTH[kind]], kinds=[kind])
        assert perturbed["valid_rate"] == 1.0 and perturbed["exact_match"] == 0.0
        assert 0.0 < perturbed["render_back"] < 1.0, kind
        assert perturbed["render_exact"] == 0.0
    # A program that draws the same image in other words is not an exact match but renders identically.
    same_look = TRUTH["ui"].replace("navy", "#000080")
    result = metric.compute(predictions=[same_look], references=[TRUTH["ui"]], kinds=["ui"])
    assert result["exact_match"] == 0.0 and result["render_back"] == 1.0 and result["render_exact"] == 1.0
    broken = metric.compute(predictions=["<div><p>unclosed"], references=[TRUTH["ui"]], kinds=["ui"])
    assert broken["valid_rate"] == 0.0 and broken["render_back"] == 0.0


def test_ssim_matches_scikit_image():
    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
    second = np.clip(first.astype(int) + rng.integers(-60, 60, first.shape), 0, 255).astype(np.uint8)
    # skimage.metrics.structural_similarity(first, second, channel_axis=2, data_range=255), scikit-image 0.26
    assert ssim(first, second) == pytest.approx(0.9065951760946417, abs=1e-12)
    assert ssim(first, first) == 1.0
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(first, first[:30])


def hostile_predictions(marker) -> dict:
    """Programs that would create `marker` if anything ever ran them."""
    touch = f"__import__('os').system('touch {marker}')"
    return {
        "chart": [touch, f"plt.title({touch})", f"plt.bar(['a'],[open('{marker}','w').write('x')])",
                  f"import os\nos.system('touch {marker}')", f"plt.plot([1,2],color=exec(\"open('{marker}','w')\"))",
                  f"plt.show.__globals__['os'].system('touch {marker}')"],
        "ui": [f"<script>require('fs').writeFileSync('{marker}','x')</script>",
               f'<div style="background:red" onclick="{touch}"><p>Hi</p></div>',
               f'<div style="background:red"><img src=x onerror="{touch}"></div>',
               f'<div style="background:url(javascript:{touch})"><p>Hi</p></div>'],
        # Syntactically valid Python: it is valid as code, but it is only ever drawn, never run.
        "code": [f"import os\nos.system('touch {marker}')", touch],
    }


def test_hostile_predictions_are_refused_and_never_executed(tmp_path):
    marker = tmp_path / "executed"
    predictions = hostile_predictions(marker)
    metric = load_metric("code_render_back")
    for kind, programs in predictions.items():
        for code in programs:
            if kind == "code":
                assert is_valid(kind, code) and try_render(kind, code) is not None
            else:
                assert not is_valid(kind, code), code
                assert try_render(kind, code) is None
                with pytest.raises(SpecError):
                    KINDS[kind].parse(code)
        result = metric.compute(predictions=programs, references=[TRUTH[kind]] * len(programs),
                                kinds=[kind] * len(programs))
        assert result["valid_rate"] == (1.0 if kind == "code" else 0.0)
    assert not marker.exists(), "a prediction was executed"


@pytest.mark.parametrize("code, message", [
    ('<div style="background:red"><span>x</span></div>', "tag <span> is not allowed"),
    ('<div style="float:left"><p>x</p></div>', "property 'float' is not allowed"),
    ('<div style="background:red"><p>x</p>', "never closed"),
    ('<div style="background:red">loose text</div>', "must be inside a <button> or <p>"),
    ('<div style="background:blurple"><p>x</p></div>', "is not a colour"),
    ('<div style="width:20px"><p>x</p></div>', "root <div> fills the image"),
    ('<div><p>a &amp; b</p></div>', "no entities"),
])
def test_ui_parser_names_what_is_outside_the_subset(code, message):
    with pytest.raises(SpecError, match=message):
        parse_ui(code)


@pytest.mark.parametrize("code, message", [
    ("plt.bar(x, [1])", "only literal values"),
    ("plt.savefig('out.png')", "plt.savefig is not allowed"),
    ("np.plot([1, 2])", "only calls on plt"),
    ("x = 3", "only plt.<function>"),
    ("plt.plot([1, 2], linewidth=3)", "keyword linewidth="),
    ("plt.plot([1, float('nan')])", "only literal values"),
    ("plt.plot([1, 1e9])", "not a finite number"),
    ("plt.title('a')", "no data"),
    ("plt.bar(['a'], [1])\nplt.plot([1, 2])", "exactly one plt.bar"),
    ("plt.plot([1, 2]", "not valid Python syntax"),
])
def test_chart_parser_names_what_is_outside_the_subset(code, message):
    with pytest.raises(SpecError, match=message):
        parse_chart(code)


def test_chart_spec_reads_values_and_accepts_the_pyplot_import():
    spec = parse_chart('import matplotlib.pyplot as plt\nplt.plot([2, 4, 3], color="#f00")\nplt.ylim(0, 5)')
    assert spec.series[0].y == [2.0, 4.0, 3.0] and spec.series[0].x == [0.0, 1.0, 2.0]
    assert spec.series[0].colour == (255, 0, 0) and spec.ylim == (0.0, 5.0)


def test_chrf_matches_sacrebleu():
    # Reference figures from sacrebleu 2.6.0: CHRF().corpus_score(hypotheses, [references]).score
    hypotheses = ["plt.bar([1,2],[3,4])", "def add(a, b):\n    return a+b", "", "<div>x</div>", "abc"]
    references = ['plt.bar([1,3],[3,4],color="red")', "def add(a, b):\n    return a + b", "print(1)",
                  "<div>y</div>", "abc"]
    chrf = load_metric("chrf")
    assert chrf.compute(predictions=hypotheses, references=references)["score"] == pytest.approx(62.86273085970934)
    assert chrf.compute(predictions=hypotheses[:2], references=references[:2])["score"] == pytest.approx(
        68.95504684420595)
    assert chrf.compute(predictions=["x"], references=["abcdefgh"])["score"] == 0.0


def test_builder_yields_the_splits_with_images_rendered_from_their_code(image_to_code_data):
    data, _ = image_to_code_data
    assert set(data) == {"train", "image_to_code_validation", "image_to_code_test"}
    sizes = {"train": COUNTS["train"], "image_to_code_validation": COUNTS["validation"],
             "image_to_code_test": COUNTS["test"]}
    for split, per_kind in sizes.items():
        rows = list(data[split])
        assert len(rows) == per_kind * len(KINDS)
        assert sorted({kind_of(row) for row in rows}) == sorted(KINDS)
        for row in rows:
            assert row["modality"] == 1 and row["label"] == -100
            assert row["task_name"] == f"image_to_code:{kind_of(row)}"
            assert np.array_equal(row_image(row), render_program(kind_of(row), row["text_target"]))


def test_baselines_retrieve_and_template(image_to_code_data):
    train = list(image_to_code_data[0]["train"])
    nearest = NearestNeighbourBaseline(train)
    kinds = [kind_of(row) for row in train[:4]]
    assert nearest.predict([row_image(row) for row in train[:4]], kinds) == [row["text_target"] for row in train[:4]]
    # Told another kind, it retrieves a program of that kind.
    other = nearest.predict([row_image(train[0])], ["code" if kinds[0] != "code" else "ui"])[0]
    assert other != train[0]["text_target"]
    template = TemplateBaseline(train, load_metric("chrf"), candidates=4, sample=4)
    predicted = template.predict(["ui", "chart", "code"])
    assert [is_valid(kind, code) for kind, code in zip(("ui", "chart", "code"), predicted)] == [True] * 3
    assert predicted[0] in {row["text_target"] for row in train if kind_of(row) == "ui"}


def test_one_training_step_through_the_collator(image_to_code_data, small_model_config):
    data, vocabulary = image_to_code_data
    config = small_model_config(max_text_length=MAX_CODE_CHARS + 2, heads=["text"], num_task_ids=len(vocabulary) + 1)
    processor = TRMProcessor.from_config(config, task_vocabulary=vocabulary)
    rows = [data["train"][i] for i in range(4)]
    batch = MultimodalCollator(processor)(rows)
    assert batch["pixel_values"].shape == (4, 3, config.image_size, config.image_size)
    assert batch["modality_ids"].tolist() == [1, 1, 1, 1]
    # Each row is prompted with its kind (the task id of its kind's prompt).
    assert batch["task_ids"].tolist() == [vocabulary[row["task_name"]] for row in rows]
    assert len(set(batch["task_ids"].tolist())) > 1, "the test needs rows of more than one kind"
    for i, row in enumerate(rows):  # the decoder is trained on the program, byte for byte
        labels = batch["text_labels"][i]
        assert processor.decode_text(labels[labels != -100]) == row["text_target"]
    model = TRMForMultitaskReasoning(config)
    before = model.trm.text_decoder.lm_head.weight.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert not torch.equal(before, model.trm.text_decoder.lm_head.weight)


def test_decoder_length_and_counts_are_checked(small_model_config):
    with pytest.raises(ValueError, match="max_text_length >= 202"):
        check_decoder_length(small_model_config(max_text_length=64))
    check_decoder_length(small_model_config(max_text_length=202))
    assert parse_counts("30,2,5") == {"train": 30, "validation": 2, "test": 5}
    with pytest.raises(ValueError, match="three integers"):
        parse_counts("30,5")
    assert task_sources("image_to_code", ["arc", "kjv"], [0.5, 0.5]) == (["image_to_code"], [1.0])
    assert task_sources("composite", ["arc", "kjv"], [0.5, 0.5]) == (["arc", "kjv"], [0.5, 0.5])
    with pytest.raises(ValueError, match="--task must be one of"):
        task_sources("img2code", ["arc"], [1.0])
