"""`TRMConfig` validation (a bad field fails at construction, naming the field) and its save / load round trip."""

import json

import pytest

from vision_trm.configuration import TRMConfig
from vision_trm.configuration.configuration_trm import parse_field_override

BAD_FIELDS = [
    (dict(patch_size=0), "patch_size must be at least 1, got 0"),
    (dict(num_attention_heads=0), "num_attention_heads must be at least 1, got 0"),
    (dict(H_cycles="3"), r"H_cycles must be an int, got '3' \(str\)"),
    (dict(L_cycles=2.0), r"L_cycles must be an int, got 2.0 \(float\)"),
    (dict(deep_supervision_steps=True), r"deep_supervision_steps must be an int, got True \(bool\)"),
    (dict(image_mean=[0.5, 0.5]), r"image_mean must hold one number per channel \(3\), got \[0.5, 0.5\]"),
    (dict(image_std=[0.5, "0.5", 0.5]), "image_std must hold one number per channel"),
    (dict(image_mean=0.5), "image_mean must be a list of numbers, got 0.5"),
    (dict(image_std=[0.5, 0.5, 0.0]), "image_std must be positive"),
    (dict(num_labels=0), "num_labels >= 1, got 0"),
    (dict(concept_vocab_size=-1), "concept_vocab_size must be 0 .off. or positive, got -1"),
    (dict(dropout=1.0), r"dropout=1.0 is out of range \(\[0, 1\)\)"),
    (dict(mlp_ratio="4"), "mlp_ratio must be a number, got '4'"),
    (dict(halting_loss_weight=-0.5), "halting_loss_weight=-0.5 is out of range"),
    (dict(patch_size=7), "image_size=64 is not a multiple of patch_size=7"),
    (dict(num_attention_heads=5), "hidden_size=64 is not a multiple of num_attention_heads=5"),
    (dict(fusion_mode="max"), "fusion_mode='max' is not one of"),
    (dict(planner_selection="hard"), "planner_selection='hard' is not one of"),
    (dict(pretrained_tower="resnet"), "pretrained_tower='resnet' is not one of"),
    (dict(heads=["grid", "segmentation"]), r"unknown heads \['segmentation'\]"),
    (dict(use_trainable_vit=False), "at least one of pretrained_tower and use_trainable_vit"),
    (dict(arc_input_alignment="yes"), "arc_input_alignment must be True or False, got 'yes'"),
]


@pytest.mark.parametrize("fields, message", BAD_FIELDS, ids=[next(iter(fields)) for fields, _ in BAD_FIELDS])
def test_bad_field_raises_value_error_naming_it(fields, message):
    with pytest.raises(ValueError, match=message):
        TRMConfig.from_preset("tiny", **fields)


def test_every_type_problem_is_reported_at_once():
    with pytest.raises(ValueError) as error:
        TRMConfig.from_preset("tiny", H_cycles="3", L_cycles=2.0, patch_size=0)
    for field in ("H_cycles", "L_cycles", "patch_size"):
        assert field in str(error.value)


def test_num_labels_zero_is_fine_without_a_classification_head():
    assert TRMConfig.from_preset("tiny", num_labels=0, heads=["grid", "text"]).num_labels == 0


def test_validation_also_guards_loading(tmp_path):
    config = TRMConfig.from_preset("tiny")
    with pytest.raises(ValueError, match="H_cycles must be an int"):
        TRMConfig.from_dict({**config.to_dict(), "H_cycles": "3"})
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**saved, "patch_size": 0}))
    with pytest.raises(ValueError, match="patch_size must be at least 1"):
        TRMConfig.from_pretrained(tmp_path)


def test_unknown_preset_names_the_presets():
    with pytest.raises(ValueError, match="Unknown preset 'huge'.*tiny"):
        TRMConfig.from_preset("huge")


ROUND_TRIP_CONFIGS = {
    "tiny": lambda: TRMConfig.from_preset("tiny"),
    "clip-b16": lambda: TRMConfig.from_preset("clip-b16"),  # with a vision sub-config
    "tiny-efficientnet": lambda: TRMConfig.from_preset("tiny-efficientnet"),
    "overridden": lambda: TRMConfig.from_preset(
        "tiny", heads=["grid", "classification"], id2label={0: "cat", 1: "dog", 2: "bird"}, image_mean=[0.1, 0.2, 0.3],
        H_cycles=4, concept_vocab_size=0, fusion_mode="mean", num_task_ids=801,
    ),
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIP_CONFIGS))
def test_config_round_trips(tmp_path, name):
    config = ROUND_TRIP_CONFIGS[name]()
    again = TRMConfig.from_dict(config.to_dict())
    assert again.to_dict() == config.to_dict()
    config.save_pretrained(tmp_path)
    loaded = TRMConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert type(loaded.vision_config) is type(config.vision_config)
    assert (loaded.num_labels, loaded.id2label, loaded.heads) == (config.num_labels, config.id2label, config.heads)


def test_field_overrides_read_json_values_and_refuse_a_missing_equals_sign():
    assert parse_field_override("H_cycles=1") == ("H_cycles", 1)
    assert parse_field_override('heads=["grid"]') == ("heads", ["grid"])
    assert parse_field_override("fusion_mode=residual") == ("fusion_mode", "residual")
    with pytest.raises(ValueError, match="key=value"):
        parse_field_override("H_cycles")
