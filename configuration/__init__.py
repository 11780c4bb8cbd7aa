"""Configuration: `TRMConfig` with its presets, and the conventions every other folder shares.

This folder owns every convention shared by the processor, the model and the scripts (modality ids, input and
label names, the ignore index, the largest grid side, the ARC palette, normalisation constants: `conventions.py`)
and the layout of an exported Hub folder (`hub_export.py`). It imports nothing from `processing/` or
`modeling_trm/`; both import from it.
"""

from transformers import AutoConfig

from .configuration_trm import HEAD_NAMES, PRESETS, TRMConfig
from .conventions import (
    ARC_PALETTE,
    BACKGROUND_CLASS,
    BORDER_CLASS,
    FORWARD_OPTIONS,
    IDENTITY_AUGMENTATION,
    IGNORE_INDEX,
    LABEL_NAMES,
    MAX_GRID_SIZE,
    MODALITY_GRID,
    MODALITY_IMAGE,
    MODALITY_NAMES,
    MODALITY_TEXT,
    MODEL_INPUT_NAMES,
    NUM_CELL_CLASSES,
    NUM_COLORS,
    NUM_DIHEDRAL_TRANSFORMS,
)

# With the package installed, `AutoConfig` knows `vision_trm` folders without remote code (the Hub copy carries
# `auto_map` and its own code for everyone else).
AutoConfig.register(TRMConfig.model_type, TRMConfig, exist_ok=True)

__all__ = [
    "TRMConfig", "PRESETS", "HEAD_NAMES", "MODALITY_TEXT", "MODALITY_IMAGE", "MODALITY_GRID", "MODALITY_NAMES",
    "MODEL_INPUT_NAMES", "LABEL_NAMES", "FORWARD_OPTIONS", "IGNORE_INDEX", "MAX_GRID_SIZE", "NUM_COLORS", "ARC_PALETTE",
    "BORDER_CLASS", "BACKGROUND_CLASS", "NUM_CELL_CLASSES", "NUM_DIHEDRAL_TRANSFORMS", "IDENTITY_AUGMENTATION",
]
