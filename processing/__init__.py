"""Processing: everything a user gives the model → canvases and model inputs, and model outputs → answers.

Owns the renderers (ARC grids `grids.py`, text `text_rendering.py`, photos `photos.py`), the ARC augmentations
(`transforms.py`), the ARC size rules (`output_size.py`, `input_alignment.py`), the byte tokenizer, `TRMImageProcessor` and `TRMProcessor`. The processor returns the model's
inputs (`MODEL_INPUT_NAMES`) and label arrays only; bookkeeping on request. It also decodes what the model returns
(`post_process_grid`, `decode_text`) and draws grids for people (`draw_grid`).

Imports `configuration/` (the shared conventions) and never `modeling_trm/`.
"""

from transformers import AutoImageProcessor, AutoProcessor

from ..configuration import TRMConfig
from .grids import (
    ARC_PALETTE,
    BACKGROUND_COLOR,
    BORDER_COLOR,
    MAX_GRID_SIZE,
    cell_label_map,
    decode_canvas,
    grid_placement,
    max_scale,
    pad_grid,
    random_cell_offset,
    random_placement,
    render_grid,
    task_canvas_cells,
    unpad_grid,
    validate_grid,
)
from .image_processing_trm import TRMImageProcessor
from .input_alignment import align_task, aligned_input, resized_copies
from .output_size import output_size_from_demonstrations
from .photos import array_to_float_rgb, photo_to_chw, pil_to_float_rgb
from .processing_trm import TRMProcessor, is_grid_like, validate_task
from .text_rendering import TextRenderer
from .tokenization import VOCAB_SIZE, build_byte_tokenizer
from .transforms import (
    NUM_DIHEDRAL,
    color_permutation_inverse,
    dihedral_inverse,
    dihedral_transform,
    inverse_dihedral_transform,
    inverse_permute_colors,
    inverse_transform_grid,
    inverse_transform_task,
    permute_colors,
    random_color_permutation,
    transform_grid,
    transform_task,
    validate_color_permutation,
)

# Installed-package use of the Auto classes without remote code (see configuration/__init__.py).
AutoProcessor.register(TRMConfig, TRMProcessor, exist_ok=True)
AutoImageProcessor.register(TRMConfig, slow_image_processor_class=TRMImageProcessor, exist_ok=True)

__all__ = [name for name in dir() if not name.startswith("_")]
