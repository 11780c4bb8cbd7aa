"""Test-wide settings (nothing may reach a hub, nothing may phone home) and the small model configs and batches
that the model, loss and seam tests share."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from tiny_models import model_batch as _model_batch  # noqa: E402
from tiny_models import small_clip_config as _small_clip_config  # noqa: E402
from tiny_models import small_model_config as _small_model_config  # noqa: E402


@pytest.fixture
def small_model_config():
    """Factory: `small_model_config(**overrides) -> TRMConfig`."""
    return _small_model_config


@pytest.fixture
def small_clip_config():
    """Factory: `small_clip_config(**overrides) -> TRMConfig` (with a tiny CLIP tower)."""
    return _small_clip_config


@pytest.fixture
def model_batch():
    """Factory: `model_batch(config, batch=3, seed=0) -> (inputs, labels)`."""
    return _model_batch
