"""Image → code scoring: exact match, the rate of syntactically valid programs, and the render-back score.

Render-back: the predicted program is drawn by the same renderer that drew the input (the reference program's
image), and the two images are compared by SSIM (`image_to_code.similarity.ssim`). A program its kind cannot draw
scores 0. Predictions are only ever parsed by the kinds' whitelist parsers and drawn with PIL: nothing a prediction
says is executed.
"""

import datasets
import evaluate
import numpy as np
from vision_trm.train_scripts.image_to_code.kinds import get_kind
from vision_trm.train_scripts.image_to_code.kinds import is_valid
from vision_trm.train_scripts.image_to_code.kinds import try_render
from vision_trm.train_scripts.image_to_code.similarity import ssim

_DESCRIPTION = "Exact match, syntactic validity and render-back SSIM of predicted programs (image → code)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): predicted programs.
    references (`list[str]`): the programs the input images were rendered from.
    kinds (`list[str]`): each pair's kind: "ui", "chart" or "code".
Returns:
    exact_match, valid_rate, render_back (mean SSIM, 0 for a program that cannot be drawn; in [-1, 1]),
    num_examples.
Examples:
    >>> metric = evaluate.load("train_scripts/metrics/code_render_back")
    >>> metric.compute(predictions=["plt.plot([1,2])"], references=["plt.plot([1,2])"], kinds=["chart"])["render_back"]
    1.0
"""


def render_back_score(kind: str, prediction: str, reference_image: np.ndarray) -> float:
    """SSIM between the prediction's rendering and the input image; 0.0 when the prediction cannot be drawn."""
    image = try_render(kind, prediction)
    return 0.0 if image is None else ssim(image, reference_image)


class CodeRenderBack(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, kinds=None):
        if kinds is None or len(kinds) != len(references):
            raise ValueError(f"kinds must name the kind of each of the {len(references)} pairs")
        exact, valid, render_back = [], [], []
        for prediction, reference, kind in zip(predictions, references, kinds):
            reference_image = get_kind(kind).render(reference)  # a reference outside its language is an error
            exact.append(prediction == reference)
            valid.append(is_valid(kind, prediction))
            render_back.append(render_back_score(kind, prediction, reference_image))
        count = len(references)
        return {"exact_match": float(np.mean(exact)) if count else 0.0,
                "valid_rate": float(np.mean(valid)) if count else 0.0,
                "render_back": float(np.mean(render_back)) if count else 0.0,
                "num_examples": count}
