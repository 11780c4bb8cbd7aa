"""Configuration of the vision-unified Tiny Recursive Model (TRM)."""

from __future__ import annotations

import copy
import json

from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .conventions import (
    ARC_VIEW_PARTS,
    CLIP_MEAN,
    CLIP_STD,
    EFFICIENTNET_MEAN,
    EFFICIENTNET_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MAX_GRID_SIZE,
    NUM_COLORS,
    NUM_DIHEDRAL_TRANSFORMS,
    SIGLIP_MEAN,
    SIGLIP_STD,
)

# The towers this package knows how to build. "none" switches the pretrained path off.
PRETRAINED_TOWERS = ("none", "clip", "dinov2", "siglip", "efficientnet_lite0")
TOWER_MODEL_TYPES = {"clip": "clip_vision_model", "dinov2": "dinov2", "siglip": "siglip_vision_model"}
FUSION_MODES = ("global", "per_token", "mean", "residual")
PLANNER_SELECTIONS = ("soft", "gumbel")
HEAD_NAMES = ("grid", "classification", "text")
GRID_HEAD_TYPES = ("queries", "cells")
POSITION_ENCODINGS = ("learned", "rope_2d")



# Field tables of `TRMConfig._validate`: each field that must be a positive int, a non-negative int (0 = off), or
# a number in a range. A string or a float where an int belongs fails here, not deep inside torch.
_POSITIVE_INT_FIELDS = (
    "image_size", "patch_size", "num_channels", "hidden_size", "num_attention_heads", "vit_num_layers",
    "adapter_num_layers", "num_task_ids", "num_task_prefix_tokens", "H_cycles", "L_cycles", "trm_num_layers",
    "deep_supervision_steps",
    "num_capsules", "planner_num_thoughts", "max_grid_size", "num_colors", "grid_head_num_layers",
    "text_vocab_size", "text_decoder_num_layers", "max_text_length",
)
_NON_NEGATIVE_INT_FIELDS = ("concept_vocab_size", "planner_num_paths", "num_task_views", "arc_training_views")
_NUMBER_FIELDS = (
    "mlp_ratio", "layer_norm_eps", "dropout", "initializer_range", "halt_exploration_prob", "concept_commitment_cost",
    "planner_temperature", "grid_loss_weight", "classification_loss_weight", "text_loss_weight",
    "halting_loss_weight", "concept_loss_weight", "cell_background_loss_weight", "rope_theta",
)
_NUMBER_RANGES = (
    ("mlp_ratio", lambda v: v > 0, "> 0"),
    ("rope_theta", lambda v: v > 1, "> 1"),
    ("layer_norm_eps", lambda v: v > 0, "> 0"),
    ("dropout", lambda v: 0 <= v < 1, "[0, 1)"),
    ("initializer_range", lambda v: v >= 0, ">= 0"),
    ("halt_exploration_prob", lambda v: 0 <= v <= 1, "[0, 1]"),
    ("concept_commitment_cost", lambda v: v >= 0, ">= 0"),
    ("planner_temperature", lambda v: v > 0, "> 0"),
    *((name, lambda v: v >= 0, ">= 0") for name in (
        "grid_loss_weight", "classification_loss_weight", "text_loss_weight", "halting_loss_weight",
        "concept_loss_weight", "cell_background_loss_weight")),
)


class TRMConfig(PretrainedConfig):
    r"""
    Configuration of [`TRMModel`]: a frozen pretrained vision tower and a small trainable ViT read a rendered
    canvas, an adaptive gate fuses them, an N2N adapter cleans the features, a Tiny Recursive Model core refines
    them over `H_cycles` x `L_cycles` with deep supervision and learned halting, capsules pool the result, a
    concept vocabulary quantises the capsules, a latent planner explores continuous-thought paths, and heads read
    out ARC grids, class labels and text.

    Every block can be ablated by one field, so each design claim can be tested by changing one flag.

    Use [`TRMConfig.from_preset`] for the named presets: `"tiny"` (CPU, tests), `"base"` (width 768, 224 px,
    patch 16, no pretrained tower), `"clip-b16"` (default tower), `"dinov2-b"`, `"siglip-b"` and
    `"efficientnet-lite0"` (the offline ImageNet-pretrained tower), and the one-token-per-cell ARC presets
    `"arc-cells-tiny"` (CPU) and `"arc-cells"` (GPU, ~10M parameters): 64 px canvas, patch 2, the cell head; and
    the ARC recipe's `"arc-tiny"` and `"arc"`: the same plus task prefix positions and augmentation tokens.

    Args:
        image_size (`int`, *optional*, defaults to 224):
            Side of the square canvas the processor renders every input onto.
        patch_size (`int`, *optional*, defaults to 16):
            Side of a patch of the trainable ViT; the token grid is `(image_size // patch_size) ** 2`. Every path is
            brought onto this grid.
        num_channels (`int`, *optional*, defaults to 3):
            Channels of `pixel_values`.
        image_mean (`list[float]`, *optional*):
            Per-channel mean the processor normalises with; defaults to the tower's own (CLIP's when no tower).
        image_std (`list[float]`, *optional*):
            Per-channel standard deviation the processor normalises with.
        hidden_size (`int`, *optional*, defaults to 768):
            Width of every trainable block.
        num_attention_heads (`int`, *optional*, defaults to 12):
            Attention heads of every trainable block.
        mlp_ratio (`float`, *optional*, defaults to 4.0):
            Width of the feed-forward layers relative to `hidden_size`.
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the feed-forward layers.
        layer_norm_eps (`float`, *optional*, defaults to 1e-6):
            Epsilon of the layer norms.
        dropout (`float`, *optional*, defaults to 0.0):
            Dropout in attention and feed-forward layers.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the truncated-normal initialiser.
        pretrained_tower (`str`, *optional*, defaults to `"clip"`):
            One of `"none"`, `"clip"`, `"dinov2"`, `"siglip"`, `"efficientnet_lite0"`. `"none"` switches the
            pretrained path off.
        pretrained_model_name_or_path (`str`, *optional*, defaults to `"openai/clip-vit-base-patch16"`):
            Hub name or folder whose weights [`TRMModel.load_pretrained_tower`] loads into the tower, e.g.
            `"openai/clip-vit-base-patch16"`. The tower is always *built* from `vision_config`, so loading a saved
            TRM checkpoint never touches the Hub.
        vision_config (`dict` or `PretrainedConfig`, *optional*):
            Config of the CLIP / DINOv2 / SigLIP tower. Built from `pretrained_tower`'s defaults when omitted.
        freeze_pretrained_tower (`bool`, *optional*, defaults to `True`):
            Whether [`TRMModel.freeze_pretrained_tower`] (called by `from_pretrained` and the training script)
            freezes the tower.
        use_trainable_vit (`bool`, *optional*, defaults to `True`):
            Whether the trainable ViT path is built.
        vit_num_layers (`int`, *optional*, defaults to 4):
            Transformer layers of the trainable ViT.
        fusion_mode (`str`, *optional*, defaults to `"global"`):
            How the two paths are fused: `"global"` (one learned gate per sample), `"per_token"` (one gate per
            token), `"mean"` (a fixed 0.5 average, the no-gate ablation) or `"residual"` (the trainable tokens plus
            the pretrained ones times a per-token gate initialised to zero: the tower joins each cell token only as
            far as training finds it useful; the ARC path's fusion). Ignored when only one path exists.
        pretrained_tower_image_size (`int`, *optional*):
            Side the pretrained tower reads the canvas at (nearest-neighbour upsampling, so ARC cells stay crisp
            blocks), e.g. 224 for a 64 px cell canvas; defaults to `image_size`.
        use_n2n_adapter (`bool`, *optional*, defaults to `True`):
            Whether the N2N feature adapter is built.
        adapter_num_layers (`int`, *optional*, defaults to 3):
            Transformer layers of the N2N adapter.
        num_task_ids (`int`, *optional*, defaults to 1):
            Size of the learned task-embedding table; id 0 means "no task" and is always present. ARC training sets
            this to the number of tasks + 1.
        num_task_prefix_tokens (`int`, *optional*, defaults to 1):
            Prefix positions a task embedding fills (TRM uses 16): row `i` of `task_embeddings` holds
            `num_task_prefix_tokens * hidden_size` numbers. Task embeddings start at zero, as in TRM, so an untrained
            task id adds nothing.
        num_task_views (`int`, *optional*, defaults to 0):
            0: one task-embedding row per task id, whatever view of the task a sample shows. `V > 0`: one row per
            (task id, view) for the first V of the fixed voting views (`conventions.standard_arc_views(V,
            arc_view_parts)`: the 8 dihedral transforms under the task's own colours, then under seeded colour
            permutations), as TRM gives each of its augmented puzzles its own embedding: a sample showing view v of
            task t reads row `t * V + v`, found from its `augmentation_ids`. The ARC recipe then draws only those
            views (translation stays random), voting uses them, and a view outside the table is an error. Costs V
            times the task-embedding rows.
        use_augmentation_tokens (`bool`, *optional*, defaults to `False`):
            Whether the augmented view a sample shows (`augmentation_ids`: its dihedral transform and colour
            permutation) is told to the model as 11 prefix tokens: one for the dihedral transform and one per
            colour, holding the colour it is drawn as. With it, the 8 x 9! views of an ARC task can share one
            task id without contradicting each other ("move right" under a transpose is "move down").
        position_encoding (`str`, *optional*, defaults to `"learned"`):
            How a token knows where it is. `"learned"`: one learned embedding per token position, added to the
            trainable ViT's patch embeddings. `"rope_2d"`: no absolute position; every self-attention of the ViT and
            of the recursion rotates its queries and keys by the token's row (half of each head) and column (the
            other half), so attention depends on the offset between two cells. An ARC rule ("grow each blue cell to
            the right") is the same wherever a grid is drawn; with learned positions the model must learn it once
            per place, with `"rope_2d"` it is the same function everywhere. Prefix tokens (task, view) are not
            rotated. Needs `hidden_size / num_attention_heads` divisible by 4.
        rope_theta (`float`, *optional*, defaults to 100.0):
            Base of the rotary frequencies with `position_encoding="rope_2d"`: the slowest pair of dimensions turns
            once in about `2 * pi * rope_theta` cells (a canvas is at most 32 cells wide).
        crop_cell_canvas (`bool`, *optional*, defaults to `False`):
            Whether an ARC task's cell canvas (`grid_head_type="cells"`) is cut to its largest grid plus the frame
            (`processing.grids.task_canvas_cells`) instead of always holding `image_size // patch_size` tokens per
            side. The tokens are the top-left corner of the full token grid, with its position embeddings; a 12 x 12
            task then costs 196 tokens instead of 1,024 (the ARC-AGI-1 trainable pairs average ~340 against 1,024).
            Training and inference must agree, so the recipe, `evaluate_arc.py` and test-time training read this
            field. Only without a pretrained tower (the tower reads the full canvas).
        arc_input_alignment (`bool`, *optional*, defaults to `False`):
            Whether every ARC input (demonstrations and test inputs) is replaced, before it is drawn, by its copy at
            the output size the task's demonstrations agree on, upscaled or tiled by the rule that gets most
            demonstration cells right (`processing.align_task`). The cell head writes each answer cell where its
            input cell is drawn, so an answer that is the input blown up or repeated becomes a copy instead of a
            move. The rule is fixed per task from its demonstrations; the outputs are untouched. Training and
            inference must agree: the main job, the recipe, `evaluate_arc.py`, test-time training and the Space read
            this field.
        arc_view_parts (`list[str]`, *optional*, defaults to `["dihedral", "colours", "translation"]`):
            The parts of an ARC view drawn at random in training (`conventions.ARC_VIEW_PARTS`): the dihedral
            transform, the colour permutation, the placement. The model is only asked about views it was trained
            on: the ARC recipe draws these parts, the main job's collator shows its rows' views less the other
            parts, and voting (`evaluate_arc.py`, the Space) and test-time training draw within them. Without
            `"colours"` the voting views are the 8 dihedral transforms under the task's own colours; without
            `"dihedral"` too, the identity view alone.
        arc_training_views (`int`, *optional*, defaults to 0):
            0: the ARC recipe draws each sample's view at random within `arc_view_parts` (9! x 8 views with colours).
            `V > 0`: it draws the dihedral transform and colours from the first V voting views
            (`conventions.standard_arc_views`) instead, every view still sharing its task's row (placement stays
            random), and test-time training draws from them too. A model with `num_task_views` trains on its own
            table of views, so set at most one of the two (or both to the same number).
        H_cycles (`int`, *optional*, defaults to 3):
            Outer recursion cycles; the first `H_cycles - 1` run without gradient.
        L_cycles (`int`, *optional*, defaults to 6):
            Latent updates of `z` per outer cycle.
        trm_num_layers (`int`, *optional*, defaults to 2):
            Transformer layers of the one shared recursion network.
        deep_supervision_steps (`int`, *optional*, defaults to 4):
            Maximum supervision steps; each runs a full H x L recursion from the detached carry.
        use_halting (`bool`, *optional*, defaults to `True`):
            Whether the halting Q-head (EMIT / EXPAND) may stop the supervision loop early.
        halt_exploration_prob (`float`, *optional*, defaults to 0.1):
            In training, the probability that a sample is forced to run a random minimum number of steps.
        num_capsules (`int`, *optional*, defaults to 12):
            Learned queries of the capsule pooling.
        concept_vocab_size (`int`, *optional*, defaults to 2048):
            Codes of the concept vocabulary; 0 switches the quantiser off.
        concept_commitment_cost (`float`, *optional*, defaults to 0.25):
            Weight of the commitment term of the quantiser loss.
        planner_num_paths (`int`, *optional*, defaults to 4):
            Continuous-thought paths of the latent planner; 0 switches the planner off.
        planner_num_thoughts (`int`, *optional*, defaults to 3):
            Continuous thoughts per path.
        planner_selection (`str`, *optional*, defaults to `"soft"`):
            `"soft"` (softmax over path scores) or `"gumbel"` (straight-through Gumbel-softmax in training).
        planner_temperature (`float`, *optional*, defaults to 1.0):
            Temperature of the path selection.
        heads (`list[str]`, *optional*, defaults to `["grid", "classification", "text"]`):
            Heads to build.
        max_grid_size (`int`, *optional*, defaults to 30):
            Largest ARC grid side the grid head predicts.
        num_colors (`int`, *optional*, defaults to 10):
            ARC colours.
        grid_head_num_layers (`int`, *optional*, defaults to 1):
            Cross-attention layers of the grid head's cell queries (`grid_head_type="queries"` only).
        grid_head_type (`str`, *optional*, defaults to `"queries"`):
            The grid head. `"queries"`: `max_grid_size`^2 learned row/column queries cross-attend to the memory and
            predict a top-left-padded grid plus its height and width. `"cells"`: one token per cell, a per-token
            classifier on the recursion's answer tokens (colours, frame, background; `cell_logits`), the output
            drawn where the input is and its size read from the predicted frame. `"cells"` needs the processor's
            cell-aligned layout (`TRMProcessor.from_config` sets it) and `image_size // patch_size *
            cells_per_token >= max_grid_size + 2`; it trains on `cell_labels`.
        cells_per_token (`int`, *optional*, defaults to 1):
            With the cell head: each token holds and writes a `cells_per_token` x `cells_per_token` block of cells
            (cells of `patch_size // cells_per_token` px). 1 is one token per cell (the ARC presets, 2 px patches);
            4 lets a 64 px canvas in 8 px patches (the main job's) hold a 30 x 30 grid with every output cell written
            by the token that reads the same cell of the input, so copying stays a per-token function.
        cell_copy_path (`bool`, *optional*, defaults to `False`):
            With the cell head: a skip path from each input cell's own pixels to the same cell's output logits (a small
            per-cell MLP, its last layer zero-initialised, added to the head's logits). Most ARC outputs are their
            input with a few edits; with the path, copying is one short learned function beside the network, which is
            left to learn the edit. Off: the network itself must carry every cell's colour to the head.
        cell_background_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of background tokens (outside the frame) in the cell head's per-token loss, relative to the
            grid's cells and its frame (weight 1).
        num_labels (`int`, *optional*, defaults to 10):
            Classes of the classification head.
        text_vocab_size (`int`, *optional*, defaults to 259):
            Vocabulary of the text decoder; must match the processor's tokenizer.
        text_decoder_num_layers (`int`, *optional*, defaults to 2):
            Layers of the causal text decoder.
        max_text_length (`int`, *optional*, defaults to 128):
            Longest decoder sequence.
        grid_loss_weight, classification_loss_weight, text_loss_weight, halting_loss_weight, concept_loss_weight
        (`float`, *optional*, default 1.0, 1.0, 1.0, 0.5, 1.0):
            Weights of each term of the multi-task loss.
    """

    model_type = "vision_trm"
    sub_configs = {"vision_config": AutoConfig}

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        num_channels: int = 3,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        hidden_size: int = 768,
        num_attention_heads: int = 12,
        mlp_ratio: float = 4.0,
        hidden_act: str = "gelu",
        layer_norm_eps: float = 1e-6,
        dropout: float = 0.0,
        initializer_range: float = 0.02,
        pretrained_tower: str = "clip",
        pretrained_model_name_or_path: str | None = "openai/clip-vit-base-patch16",
        vision_config: dict | PretrainedConfig | None = None,
        freeze_pretrained_tower: bool = True,
        use_trainable_vit: bool = True,
        vit_num_layers: int = 4,
        fusion_mode: str = "global",
        pretrained_tower_image_size: int | None = None,
        use_n2n_adapter: bool = True,
        adapter_num_layers: int = 3,
        num_task_ids: int = 1,
        num_task_prefix_tokens: int = 1,
        num_task_views: int = 0,
        use_augmentation_tokens: bool = False,
        crop_cell_canvas: bool = False,
        arc_input_alignment: bool = False,
        position_encoding: str = "learned",
        rope_theta: float = 100.0,
        arc_view_parts: list[str] | tuple[str, ...] = ARC_VIEW_PARTS,
        arc_training_views: int = 0,
        H_cycles: int = 3,
        L_cycles: int = 6,
        trm_num_layers: int = 2,
        deep_supervision_steps: int = 4,
        use_halting: bool = True,
        halt_exploration_prob: float = 0.1,
        num_capsules: int = 12,
        concept_vocab_size: int = 2048,
        concept_commitment_cost: float = 0.25,
        planner_num_paths: int = 4,
        planner_num_thoughts: int = 3,
        planner_selection: str = "soft",
        planner_temperature: float = 1.0,
        heads: list[str] | tuple[str, ...] = HEAD_NAMES,
        max_grid_size: int = MAX_GRID_SIZE,
        num_colors: int = NUM_COLORS,
        grid_head_num_layers: int = 1,
        grid_head_type: str = "queries",
        cells_per_token: int = 1,
        cell_copy_path: bool = False,
        cell_background_loss_weight: float = 1.0,
        num_labels: int | None = None,
        text_vocab_size: int = 259,
        text_decoder_num_layers: int = 2,
        max_text_length: int = 128,
        grid_loss_weight: float = 1.0,
        classification_loss_weight: float = 1.0,
        text_loss_weight: float = 1.0,
        halting_loss_weight: float = 0.5,
        concept_loss_weight: float = 1.0,
        **kwargs,
    ):
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.mlp_ratio = mlp_ratio
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.pretrained_tower = pretrained_tower
        self.pretrained_model_name_or_path = pretrained_model_name_or_path
        self.vision_config = _build_vision_config(pretrained_tower, vision_config, image_size)
        self.freeze_pretrained_tower = freeze_pretrained_tower
        self.use_trainable_vit = use_trainable_vit
        self.vit_num_layers = vit_num_layers
        self.fusion_mode = fusion_mode
        self.pretrained_tower_image_size = pretrained_tower_image_size
        self.use_n2n_adapter = use_n2n_adapter
        self.adapter_num_layers = adapter_num_layers
        self.num_task_ids = num_task_ids
        self.num_task_prefix_tokens = num_task_prefix_tokens
        self.num_task_views = num_task_views
        self.use_augmentation_tokens = use_augmentation_tokens
        self.crop_cell_canvas = crop_cell_canvas
        self.arc_input_alignment = arc_input_alignment
        self.position_encoding = position_encoding
        self.rope_theta = rope_theta
        self.arc_view_parts = list(arc_view_parts) if isinstance(arc_view_parts, (list, tuple)) else arc_view_parts
        self.arc_training_views = arc_training_views
        self.H_cycles = H_cycles
        self.L_cycles = L_cycles
        self.trm_num_layers = trm_num_layers
        self.deep_supervision_steps = deep_supervision_steps
        self.use_halting = use_halting
        self.halt_exploration_prob = halt_exploration_prob
        self.num_capsules = num_capsules
        self.concept_vocab_size = concept_vocab_size
        self.concept_commitment_cost = concept_commitment_cost
        self.planner_num_paths = planner_num_paths
        self.planner_num_thoughts = planner_num_thoughts
        self.planner_selection = planner_selection
        self.planner_temperature = planner_temperature
        self.heads = list(heads)
        self.max_grid_size = max_grid_size
        self.num_colors = num_colors
        self.grid_head_num_layers = grid_head_num_layers
        self.grid_head_type = grid_head_type
        self.cells_per_token = cells_per_token
        self.cell_copy_path = cell_copy_path
        self.cell_background_loss_weight = cell_background_loss_weight
        self.text_vocab_size = text_vocab_size
        self.text_decoder_num_layers = text_decoder_num_layers
        self.max_text_length = max_text_length
        self.grid_loss_weight = grid_loss_weight
        self.classification_loss_weight = classification_loss_weight
        self.text_loss_weight = text_loss_weight
        self.halting_loss_weight = halting_loss_weight
        self.concept_loss_weight = concept_loss_weight
        default_mean, default_std = _default_normalisation(pretrained_tower)
        self.image_mean = _as_list(image_mean, "image_mean") if image_mean is not None else default_mean
        self.image_std = _as_list(image_std, "image_std") if image_std is not None else default_std
        if num_labels is None and "id2label" not in kwargs:
            num_labels = 10
        if num_labels is not None:
            kwargs["num_labels"] = num_labels
        super().__init__(**kwargs)
        self._validate()

    @property
    def num_patches_per_side(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.num_patches_per_side**2

    @property
    def has_pretrained_tower(self) -> bool:
        return self.pretrained_tower != "none"

    def _validate(self) -> None:
        """Raises one `ValueError` listing every field that would make the model fail later."""
        problems = [*self._type_problems(), *self._range_problems()]
        if not problems:
            problems = self._consistency_problems()
        if problems:
            raise ValueError("Invalid TRMConfig: " + "; ".join(problems))

    def _type_problems(self) -> list[str]:
        problems = []
        for name in (*_POSITIVE_INT_FIELDS, *_NON_NEGATIVE_INT_FIELDS):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                problems.append(f"{name} must be an int, got {value!r} ({type(value).__name__})")
        for name in _NUMBER_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                problems.append(f"{name} must be a number, got {value!r} ({type(value).__name__})")
        for name in ("image_mean", "image_std"):
            values = getattr(self, name)
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if len(values) != self.num_channels or not numbers:
                problems.append(f"{name} must hold one number per channel ({self.num_channels}), got {values}")
        return problems

    def _range_problems(self) -> list[str]:
        problems = []
        for name in _POSITIVE_INT_FIELDS:
            if isinstance(getattr(self, name), int) and getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in _NON_NEGATIVE_INT_FIELDS:
            if isinstance(getattr(self, name), int) and getattr(self, name) < 0:
                problems.append(f"{name} must be 0 (off) or positive, got {getattr(self, name)}")
        for name, low, high in _NUMBER_RANGES:
            value = getattr(self, name)
            if isinstance(value, (int, float)) and not low(value):
                problems.append(f"{name}={value} is out of range ({high})")
        if any(isinstance(v, (int, float)) and v <= 0 for v in self.image_std):
            problems.append(f"image_std must be positive, got {self.image_std}")
        if "classification" in self.heads and self.num_labels < 1:
            problems.append(f"the classification head needs num_labels >= 1, got {self.num_labels}")
        return problems

    def _consistency_problems(self) -> list[str]:
        problems = []
        if self.pretrained_tower not in PRETRAINED_TOWERS:
            problems.append(f"pretrained_tower={self.pretrained_tower!r} is not one of {PRETRAINED_TOWERS}")
        if not self.has_pretrained_tower and not self.use_trainable_vit:
            problems.append("at least one of pretrained_tower and use_trainable_vit must be on")
        if self.image_size % self.patch_size:
            problems.append(f"image_size={self.image_size} is not a multiple of patch_size={self.patch_size}")
        if self.hidden_size % self.num_attention_heads:
            problems.append(
                f"hidden_size={self.hidden_size} is not a multiple of num_attention_heads={self.num_attention_heads}"
            )
        size = self.pretrained_tower_image_size
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < self.image_size):
            problems.append(f"pretrained_tower_image_size must be None or an int >= image_size ({self.image_size}), "
                            f"got {size!r}")
        if self.position_encoding not in POSITION_ENCODINGS:
            problems.append(f"position_encoding={self.position_encoding!r} is not one of {POSITION_ENCODINGS}")
        elif self.position_encoding == "rope_2d" and (self.hidden_size // self.num_attention_heads) % 4:
            problems.append(f"position_encoding='rope_2d' splits each head in four (row and column, two halves "
                            f"each): hidden_size / num_attention_heads = "
                            f"{self.hidden_size // self.num_attention_heads} is not a multiple of 4")
        parts = self.arc_view_parts
        if (not isinstance(parts, list) or not set(parts) <= set(ARC_VIEW_PARTS)
                or len(set(parts)) != len(parts)):
            problems.append(f"arc_view_parts must list each of {ARC_VIEW_PARTS} at most once, got {parts!r}")
        elif "colours" not in parts:
            distinct = NUM_DIHEDRAL_TRANSFORMS if "dihedral" in parts else 1
            for name in ("num_task_views", "arc_training_views"):
                if getattr(self, name) > distinct:
                    problems.append(f"{name}={getattr(self, name)}: arc_view_parts={parts} give {distinct} "
                                    f"distinct view(s) of a task")
        if self.num_task_views and self.arc_training_views not in (0, self.num_task_views):
            problems.append(f"arc_training_views={self.arc_training_views}: a model with num_task_views="
                            f"{self.num_task_views} trains on its own {self.num_task_views} views")
        if self.fusion_mode not in FUSION_MODES:
            problems.append(f"fusion_mode={self.fusion_mode!r} is not one of {FUSION_MODES}")
        if self.planner_selection not in PLANNER_SELECTIONS:
            problems.append(f"planner_selection={self.planner_selection!r} is not one of {PLANNER_SELECTIONS}")
        unknown_heads = set(self.heads) - set(HEAD_NAMES)
        if unknown_heads:
            problems.append(f"unknown heads {sorted(unknown_heads)}; known heads are {HEAD_NAMES}")
        if not isinstance(self.use_augmentation_tokens, bool):
            problems.append(f"use_augmentation_tokens must be True or False, got {self.use_augmentation_tokens!r}")
        if not isinstance(self.crop_cell_canvas, bool):
            problems.append(f"crop_cell_canvas must be True or False, got {self.crop_cell_canvas!r}")
        elif self.crop_cell_canvas and (self.grid_head_type != "cells" or self.has_pretrained_tower):
            problems.append("crop_cell_canvas needs the cell head (grid_head_type='cells') and no pretrained tower "
                            f"(got grid_head_type={self.grid_head_type!r}, pretrained_tower={self.pretrained_tower!r})")
        if not isinstance(self.arc_input_alignment, bool):
            problems.append(f"arc_input_alignment must be True or False, got {self.arc_input_alignment!r}")
        if not isinstance(self.cell_copy_path, bool):
            problems.append(f"cell_copy_path must be True or False, got {self.cell_copy_path!r}")
        elif self.cell_copy_path and self.grid_head_type != "cells":
            problems.append("cell_copy_path reads each cell's pixels for the cell head: it needs grid_head_type='cells'"
                            f", got {self.grid_head_type!r}")
        if self.grid_head_type not in GRID_HEAD_TYPES:
            problems.append(f"grid_head_type={self.grid_head_type!r} is not one of {GRID_HEAD_TYPES}")
        elif self.grid_head_type == "cells":
            problems += self._cell_head_problems()
        return problems

    def _cell_head_problems(self) -> list[str]:
        k = self.cells_per_token
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or self.patch_size % k:
            return [f"cells_per_token must be an int >= 1 dividing patch_size={self.patch_size}, got {k!r}"]
        if self.crop_cell_canvas is True and k != 1:
            return [f"crop_cell_canvas crops whole tokens of one cell each: it needs cells_per_token=1, got {k}"]
        if self.cells_per_side < self.max_grid_size + 2:
            return [f"grid_head_type='cells': image_size // patch_size * cells_per_token = {self.cells_per_side} "
                    f"cells per side cannot hold a max_grid_size={self.max_grid_size} grid and its one-cell frame "
                    f"({self.max_grid_size + 2}); e.g. image_size=64, patch_size=2 gives 32"]
        return []

    @property
    def cells_per_side(self) -> int:
        """ARC cells per canvas side in the cell head's layout."""
        return self.num_patches_per_side * self.cells_per_token

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "TRMConfig":
        """Builds one of the named presets (see `PRESETS`), with any field overridden by keyword."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; available presets: {sorted(PRESETS)}")
        kwargs = copy.deepcopy(PRESETS[name])
        kwargs.update(overrides)
        return cls(**kwargs)


def _as_list(values, name: str) -> list:
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"Invalid TRMConfig: {name} must be a list of numbers, got {values!r}")
    return list(values)


def _default_normalisation(tower: str) -> tuple[list[float], list[float]]:
    if tower == "dinov2":
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    if tower == "siglip":
        return list(SIGLIP_MEAN), list(SIGLIP_STD)
    if tower == "efficientnet_lite0":
        return list(EFFICIENTNET_MEAN), list(EFFICIENTNET_STD)
    return list(CLIP_MEAN), list(CLIP_STD)


def _build_vision_config(tower: str, vision_config, image_size: int):
    """Returns the tower's sub-config: the given one (dict or config), or the tower's ViT-B default."""
    if tower not in TOWER_MODEL_TYPES:
        return None  # "none" and EfficientNet-Lite0 (a fixed architecture) need no sub-config.
    if isinstance(vision_config, PretrainedConfig):
        return vision_config
    model_type = TOWER_MODEL_TYPES[tower]
    if isinstance(vision_config, dict):
        vision_config = dict(vision_config)
        model_type = vision_config.pop("model_type", model_type)
        return CONFIG_MAPPING[model_type](**vision_config)
    defaults = {"image_size": image_size}
    if tower == "dinov2":
        defaults["patch_size"] = 14
    return CONFIG_MAPPING[model_type](**defaults)


_NO_TOWER = dict(pretrained_tower="none", pretrained_model_name_or_path=None)

_TINY = dict(
    _NO_TOWER,
    image_size=64,
    patch_size=8,
    hidden_size=64,
    num_attention_heads=4,
    vit_num_layers=2,
    adapter_num_layers=2,
    H_cycles=2,
    L_cycles=2,
    trm_num_layers=1,
    deep_supervision_steps=2,
    num_capsules=12,
    concept_vocab_size=256,
    planner_num_paths=4,
    planner_num_thoughts=2,
    max_text_length=64,
    text_decoder_num_layers=1,
)

_BASE = dict(_NO_TOWER, image_size=224, patch_size=16, hidden_size=768, num_attention_heads=12, vit_num_layers=4)

# One token per ARC cell: a 64 px canvas in 2 px patches is 32 x 32 tokens, a 30 x 30 grid and its frame. The
# read-out blocks that pool the answer (capsules: at least one, it feeds the halting head) are kept small, the
# concept vocabulary, the planner and the N2N adapter are off: the cell head reads the answer tokens directly.
# Positions are 2D rotary: on the H200 plain-ViT arm at equal time (7.5 min, seeds 0 and 1) 32-view per-cell accuracy
# was 69.0 / 69.3% against 64.3 / 57.6% with learned positions (benchmarks/results/h200_arc_position_encoding.json).
_ARC_CELLS = dict(
    _NO_TOWER,
    image_size=64,
    patch_size=2,
    position_encoding="rope_2d",
    use_n2n_adapter=False,
    num_capsules=2,
    concept_vocab_size=0,
    planner_num_paths=0,
    heads=["grid"],
    grid_head_type="cells",
)

PRESETS: dict[str, dict] = {
    "tiny": _TINY,
    "base": _BASE,
    "clip-b16": dict(_BASE, pretrained_tower="clip", pretrained_model_name_or_path="openai/clip-vit-base-patch16"),
    "dinov2-b": dict(_BASE, pretrained_tower="dinov2", pretrained_model_name_or_path="facebook/dinov2-base"),
    "siglip-b": dict(
        _BASE, pretrained_tower="siglip", pretrained_model_name_or_path="google/siglip-base-patch16-224"
    ),
    "efficientnet-lite0": dict(_BASE, pretrained_tower="efficientnet_lite0"),
    # The offline default of the main job: the tiny preset with the ImageNet-pretrained EfficientNet-Lite0 tower,
    # and the cell head with 4 x 4 cells per 8 px token, so an ARC answer is written where its input is read (the
    # 900-query head of `tiny` could not copy; `benchmarks/bench_copy.py --preset tiny --set cells_per_token=4`), and
    # the cell copy path (ARC per-cell +9.7 points [+0.5, +19.0] over 3 seeds, images and text unchanged).
    "tiny-efficientnet": dict(_TINY, pretrained_tower="efficientnet_lite0", grid_head_type="cells", cells_per_token=4,
                              cell_copy_path=True, arc_input_alignment=True),
    # CPU (tests, the copy benchmark's smoke run).
    "arc-cells-tiny": dict(
        _ARC_CELLS, hidden_size=64, num_attention_heads=4, vit_num_layers=1, trm_num_layers=1, H_cycles=2,
        L_cycles=1, deep_supervision_steps=2,
    ),
    # GPU: ~10M trainable parameters, TRM recursion on.
    "arc-cells": dict(
        _ARC_CELLS, hidden_size=384, num_attention_heads=6, vit_num_layers=2, trm_num_layers=2, H_cycles=2,
        L_cycles=2, deep_supervision_steps=2, num_capsules=4,
    ),
}
# The ARC recipe's presets (`run_multimodal.py --recipe arc`): the cell presets plus the task conditioning that
# respects augmentation, several zero-initialised task prefix positions and the view told as tokens.
PRESETS["arc-tiny"] = dict(PRESETS["arc-cells-tiny"], num_task_prefix_tokens=4, use_augmentation_tokens=True)
PRESETS["arc"] = dict(PRESETS["arc-cells"], num_task_prefix_tokens=8, use_augmentation_tokens=True)
# The hybrid on the ARC path (the "+ tower" ablation): the offline ImageNet tower reads the cell canvas at 224 px and
# joins each cell token through a zero-initialised per-token gate.
PRESETS["arc-tower"] = dict(PRESETS["arc"], pretrained_tower="efficientnet_lite0", fusion_mode="residual",
                            pretrained_tower_image_size=224)


def parse_field_override(item: str) -> tuple[str, object]:
    """`key=value` from a command line (`--set H_cycles=1`, `--set heads=["grid"]`): the value is read as JSON, and a
    bare word is a string. The benchmarks' `--set` flags use it; `TRMConfig` validates the result."""
    if "=" not in item:
        raise ValueError(f"--set takes key=value, got {item!r}")
    key, raw = item.split("=", 1)
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw
