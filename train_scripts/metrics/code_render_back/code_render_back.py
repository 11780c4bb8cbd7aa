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
    render_exact (the fraction drawn pixel-identical to the input: a different text can draw the same image),
    num_examples.
Examples:
    >>> metric = evaluate.load("train_scripts/metrics/code_render_back")
    >>> metric.compute(predictions=["plt.plot([1,2])"], references=["plt.plot([1,2])"], kinds=["chart"])["render_back"]
    1.0
"""


def render_back_scores(kind: str, prediction: str, reference_image: np.ndarray) -> tuple[float, bool]:
    """(SSIM between the prediction's rendering and the input image, whether they are pixel-identical); (0.0, False)
    when the prediction cannot be drawn."""
    image = try_render(kind, prediction)
    if image is None:
        return 0.0, False
    return ssim(image, reference_image), bool(np.array_equal(image, reference_image))


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
        exact, valid, render_back, render_exact = [], [], [], []
        for prediction, reference, kind in zip(predictions, references, kinds):
            reference_image = get_kind(kind).render(reference)  # a reference outside its language is an error
            exact.append(prediction == reference)
            valid.append(is_valid(kind, prediction))
            similarity, identical = render_back_scores(kind, prediction, reference_image)
            render_back.append(similarity)
            render_exact.append(identical)
        mean = (lambda values: float(np.mean(values))) if references else (lambda values: 0.0)
        return {"exact_match": mean(exact), "valid_rate": mean(valid), "render_back": mean(render_back),
                "render_exact": mean(render_exact), "num_examples": len(references)}
