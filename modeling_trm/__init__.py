"""Modeling: the `PreTrainedModel` classes and their blocks, one idea per file.

Imports `configuration/` only (never `processing/`). Data flow: `towers` + `vit` read the canvas → `fusion` →
`adapter` (N2N) → `recursion` (H × L cycles per supervision step, halting) → `capsules` → `concepts` → `planner` →
`heads`. `TRMModel` (`modeling_trm.py`) returns per-step outputs and computes no loss; `losses.py` owns the training
objective (deep supervision, halting targets, multi-task and concept terms), which `TRMForMultitaskReasoning` and
`TRMForImageClassification` apply; `TRMForN2NPretraining` is the adapter's own pre-training entry point.
"""

from transformers import AutoModel, AutoModelForImageClassification, AutoModelForPreTraining

from ..configuration import TRMConfig
from .losses import TRMMultitaskLoss
from .modeling_trm import (
    TRMForImageClassification,
    TRMForMultitaskReasoning,
    TRMForN2NPretraining,
    TRMModel,
    TRMPreTrainedModel,
)
from .outputs import TRMModelOutput, TRMMultitaskOutput, TRMN2NOutput

# Installed-package use of the Auto classes without remote code (see configuration/__init__.py).
AutoModel.register(TRMConfig, TRMModel, exist_ok=True)
AutoModelForPreTraining.register(TRMConfig, TRMForMultitaskReasoning, exist_ok=True)
AutoModelForImageClassification.register(TRMConfig, TRMForImageClassification, exist_ok=True)

__all__ = [
    "TRMModel",
    "TRMForMultitaskReasoning",
    "TRMForImageClassification",
    "TRMForN2NPretraining",
    "TRMPreTrainedModel",
    "TRMMultitaskLoss",
    "TRMModelOutput",
    "TRMMultitaskOutput",
    "TRMN2NOutput",
]
