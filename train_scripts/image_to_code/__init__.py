"""Image → code (the design notes' multimodal stage): UI mockups → an HTML/CSS subset, charts → pyplot-style
plotting code, code screenshots → the code.

    common.py      the error type, colours, fonts, image size shared by the three languages
    ui_spec.py     HTML/CSS subset: whitelist parser (stdlib HTMLParser) + PIL renderer
    chart_spec.py  pyplot calls read as a declarative spec (ast + literal_eval, never executed) + PIL renderer
    code_image.py  Python snippets drawn as a screenshot (validity = ast.parse; never run)
    kinds.py       the table of kinds: parse / render / is_valid / try_render
    generator.py   seeded programs of each kind, split by a hash of their text
    dataset.py     composite rows (the `image_to_code` source of `data_sources.build_composite`)
    similarity.py  SSIM (render-back) and thumbnails (retrieval)
    baselines.py   nearest-neighbour retrieval, per-kind template
    evaluation.py  model vs baselines per kind through the local `evaluate` modules

No program — a generated one or a model's prediction — is ever executed: every language is parsed by a whitelist
into plain data and drawn with PIL.
"""

from .common import IMAGE_SIZE, SpecError
from .kinds import KINDS, get_kind, is_valid, render_program, try_render

__all__ = ["IMAGE_SIZE", "KINDS", "SpecError", "get_kind", "is_valid", "render_program", "try_render"]
