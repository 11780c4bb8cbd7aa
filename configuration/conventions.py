"""The conventions that the processor, the model, the loss, the training scripts and the Space share.

Each is defined here once; every other module imports it from here, so changing one value changes it everywhere.
"""

from __future__ import annotations

import numpy as np

# ------------------------------------------------------------------------------------------------ modalities
# Carried by the processor's `modality_ids` and embedded by the model.
MODALITY_TEXT = 0
MODALITY_IMAGE = 1
MODALITY_GRID = 2
MODALITY_NAMES = {MODALITY_TEXT: "text", MODALITY_IMAGE: "image", MODALITY_GRID: "grid"}

# ------------------------------------------------------------------------------------------- model interface
# What the processor returns and the model's `forward` takes: the one list the collator, the Space and the
# evaluation scripts select with. Bookkeeping (which input a row came from, truncation flags) is not in it.
MODEL_INPUT_NAMES = (
    "pixel_values", "modality_ids", "task_ids", "decoder_input_ids", "decoder_attention_mask", "augmentation_ids",
)
# Targets: class labels [B], padded ARC output grids [B, S, S], decoder targets [B, T], and in the cell-aligned
# layout the class of every token [B, T, T] (see CELL_CLASSES below).
LABEL_NAMES = ("labels", "grid_labels", "text_labels", "cell_labels")
# How to run `forward`, not what it reads: a caller that built its inputs itself may skip their value checks (each a
# GPU sync; `TRMModel.forward`).
FORWARD_OPTIONS = ("check_input_values",)
# Label value that no loss or metric counts (PyTorch's `cross_entropy` default, as in transformers).
IGNORE_INDEX = -100

# --------------------------------------------------------------------------------------------------- ARC grids
MAX_GRID_SIZE = 30  # the largest ARC grid side; `TRMConfig.max_grid_size` defaults to it
NUM_COLORS = 10
# An augmented view of an ARC task as the processor returns it in `augmentation_ids` [B, 11]: column 0 the dihedral
# transform (0..7, see processing/transforms.py), columns 1..10 the colour permutation (colour c is drawn as
# column 1 + c). The identity view:
NUM_DIHEDRAL_TRANSFORMS = 8
IDENTITY_AUGMENTATION = (0,) + tuple(range(NUM_COLORS))
# The parts of an ARC view a model can be trained to see at random (`TRMConfig.arc_view_parts`): the dihedral
# transform, the colour permutation and the placement on the canvas.
ARC_VIEW_PARTS = ("dihedral", "colours", "translation")


def standard_arc_views(num_views: int, view_parts=ARC_VIEW_PARTS, seed: int = 0) -> np.ndarray:
    """The fixed views of an ARC task voting uses, as `[num_views, 11]` `augmentation_ids` rows: every dihedral
    transform under the task's own colours first (the identity view first of all), then every dihedral transform
    under each of `ceil(num_views / 8) - 1` random colour permutations (colour 0 fixed) drawn from
    `np.random.default_rng(seed)`; 32 views = 8 dihedral transforms x 4 colour permutations. Without `"dihedral"`
    in `view_parts` there is only the identity transform, without `"colours"` only the task's own colours (asking
    for more views than that gives is the caller's error to report).

    The one owner of this table: `train_scripts.arc_voting.voting_views` votes over its rows and, with
    `TRMConfig.num_task_views = V`, the model keeps one task-embedding row per task for each of its first V rows."""
    dihedrals = NUM_DIHEDRAL_TRANSFORMS if "dihedral" in view_parts else 1
    rng = np.random.default_rng(seed)
    colourings = [np.arange(NUM_COLORS)]
    for _ in range(-(-num_views // dihedrals) - 1):
        colourings.append(np.concatenate([[0], rng.permutation(np.arange(1, NUM_COLORS))]))
    rows = [[dihedral, *colouring] for colouring in colourings for dihedral in range(dihedrals)]
    return np.asarray(rows[:num_views], dtype=np.int64).reshape(-1, 1 + NUM_COLORS)


# The standard ARC palette, colour index 0..9 (uint8 RGB).
ARC_PALETTE = np.array(
    [
        [0, 0, 0],  # 0 black
        [0, 116, 217],  # 1 blue
        [255, 65, 54],  # 2 red
        [46, 204, 64],  # 3 green
        [255, 220, 0],  # 4 yellow
        [170, 170, 170],  # 5 grey
        [240, 18, 190],  # 6 magenta
        [255, 133, 27],  # 7 orange
        [127, 219, 255],  # 8 light blue
        [135, 12, 37],  # 9 maroon
    ],
    dtype=np.uint8,
)
ARC_PALETTE.setflags(write=False)

# -------------------------------------------------------------------------------------- cell-aligned layout
# With `grid_layout="cells"` each ViT token is exactly one grid cell, and the cell head classifies every token
# as one of the ten colours, the one-cell frame around the grid, or the background outside it. The frame is how the
# output's size is read back. The order matches the renderer's extended palette (colours, border, background).
BORDER_CLASS = NUM_COLORS
BACKGROUND_CLASS = NUM_COLORS + 1
NUM_CELL_CLASSES = NUM_COLORS + 2

# ------------------------------------------------------------------------------------------- normalisation
# Per-channel mean / std of each tower's pre-processing, on pixels scaled to [0, 1].
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIGLIP_MEAN, SIGLIP_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
# EfficientNet-Lite0 expects (x - 127) / 128 on 0..255 pixels.
EFFICIENTNET_MEAN, EFFICIENTNET_STD = (127 / 255,) * 3, (128 / 255,) * 3
