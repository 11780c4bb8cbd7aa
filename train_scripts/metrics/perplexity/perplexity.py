"""Perplexity from per-token negative log-likelihoods (the model's own scores; no model is loaded here)."""

import math

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Perplexity = exp(total negative log-likelihood / number of scored tokens), pooled over sequences."
_KWARGS_DESCRIPTION = """
Args:
    nll_sums (`list[float]`): per sequence, the summed natural-log negative log-likelihood of its scored tokens.
    token_counts (`list[int]`): per sequence, how many tokens were scored.
Returns:
    perplexity (`float`), mean_nll (`float`, nats per token), bits_per_token (`float`), num_tokens (`int`).
Examples:
    >>> metric = evaluate.load("train_scripts/metrics/perplexity")
    >>> round(metric.compute(nll_sums=[2 * math.log(4)], token_counts=[2])["perplexity"], 6)
    4.0
"""


class Perplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"nll_sums": datasets.Value("float64"),
                                        "token_counts": datasets.Value("int64")}),
        )

    def _compute(self, nll_sums, token_counts):
        total = float(np.sum(nll_sums))
        count = int(np.sum(token_counts))
        mean = total / max(count, 1)
        return {"perplexity": math.exp(mean), "mean_nll": mean, "bits_per_token": mean / math.log(2),
                "num_tokens": count}
