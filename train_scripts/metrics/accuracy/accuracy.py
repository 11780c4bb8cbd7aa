"""Classification accuracy (a local copy of the Hub's `accuracy`, so that evaluation works offline)."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Accuracy = the fraction of predictions equal to the reference labels."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted labels.
    references (`list[int]`): true labels.
Returns:
    accuracy (`float`): in [0, 1].
Examples:
    >>> metric = evaluate.load("train_scripts/metrics/accuracy")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])["accuracy"]
    0.6666666666666666
"""


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        return {"accuracy": float((predictions == references).mean()) if len(references) else 0.0}
