"""chrF (Popović 2015) as sacrebleu computes it: character n-grams of orders 1..6 with whitespace removed; the
matches, hypothesis and reference counts of each order summed over the corpus; each order's precision and recall
averaged over the orders that occur, then their F-beta (beta 2) — sacrebleu's default (`eps_smoothing=False`).
A local copy so that evaluation works offline; a test checks it against figures sacrebleu 2.6 gives."""

from collections import Counter

import datasets
import evaluate

_DESCRIPTION = "Corpus-level chrF: the character n-gram F-score (orders 1..6, beta 2), in [0, 100]."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): hypotheses.
    references (`list[str]`): one reference per hypothesis.
    char_order (`int`, default 6), beta (`int`, default 2).
Returns:
    score (`float`): chrF in [0, 100]; char_order, beta.
Examples:
    >>> metric = evaluate.load("train_scripts/metrics/chrf")
    >>> metric.compute(predictions=["plt.bar([1])"], references=["plt.bar([1])"])["score"]
    100.0
"""


def _ngrams(text, order):
    text = "".join(text.split())
    return Counter(text[i:i + order] for i in range(len(text) - order + 1))


def corpus_statistics(predictions, references, char_order):
    """Per order: [hypothesis n-grams, reference n-grams, matches], summed over the pairs."""
    totals = [[0, 0, 0] for _ in range(char_order)]
    for prediction, reference in zip(predictions, references):
        for order in range(1, char_order + 1):
            hypothesis, target = _ngrams(prediction, order), _ngrams(reference, order)
            totals[order - 1][0] += sum(hypothesis.values())
            totals[order - 1][1] += sum(target.values())
            totals[order - 1][2] += sum((hypothesis & target).values())
    return totals


def f_score(totals, beta):
    """sacrebleu's default: precision and recall averaged over the orders present in both, then one F-beta."""
    factor = beta ** 2
    present = [(matches / hypothesis, matches / reference) for hypothesis, reference, matches in totals
               if hypothesis > 0 and reference > 0]
    if not present:
        return 0.0
    precision = sum(p for p, _ in present) / len(present)
    recall = sum(r for _, r in present) / len(present)
    if precision + recall == 0:
        return 0.0
    return 100 * (1 + factor) * precision * recall / (factor * precision + recall)


class Chrf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Popovic, chrF: character n-gram F-score for automatic MT evaluation, WMT 2015.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, char_order=6, beta=2):
        totals = corpus_statistics(predictions, references, char_order)
        return {"score": f_score(totals, beta), "char_order": char_order, "beta": beta}
