"""The two baselines the model is measured beside.

* Nearest neighbour: the program of the training image of the input's kind closest to the input (L2 on 24 x 24 RGB
  thumbnails).
* Per-kind template: one fixed program per kind, told the input's kind — the training program of that kind with the
  highest chrF against a sample of the kind's other training programs (a medoid), i.e. the best single guess.
"""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np

from .dataset import kind_of
from .similarity import retrieval_features

THUMBNAIL_SIDE = 24


def row_image(row) -> np.ndarray:
    """A composite row's pixels as uint8 [H, W, 3]."""
    return np.frombuffer(row["image"], dtype=np.uint8).reshape(row["image_shape"])


class NearestNeighbourBaseline:
    """Retrieval: `predict(images, kinds)` returns, for each image, the program of the most similar training image
    of its kind (told the kind, as the model and the template are)."""

    def __init__(self, train_rows):
        rows = list(train_rows)
        if not rows:
            raise ValueError("the nearest-neighbour baseline needs at least one training pair")
        self.programs = np.array([row["text_target"] for row in rows], dtype=object)
        self.kinds = np.array([kind_of(row) for row in rows])
        self.features = np.stack([retrieval_features(row_image(row), THUMBNAIL_SIDE) for row in rows])
        self.squared_norms = (self.features ** 2).sum(1)

    def predict(self, images, kinds) -> list[str]:
        missing = sorted(set(kinds) - set(self.kinds))
        if missing:
            raise ValueError(f"the nearest-neighbour baseline saw no training image of kinds {missing}")
        queries = np.stack([retrieval_features(image, THUMBNAIL_SIDE) for image in images])
        # ||q - t||^2 = ||q||^2 - 2 q.t + ||t||^2; the ||q||^2 term does not change the argmin.
        distances = self.squared_norms[None, :] - 2.0 * queries @ self.features.T
        distances[self.kinds[None, :] != np.asarray(kinds)[:, None]] = np.inf
        return [self.programs[i] for i in distances.argmin(1)]


class TemplateBaseline:
    """One program per kind (a chrF medoid of the kind's training programs); `predict(kinds)` returns them."""

    def __init__(self, train_rows, chrf_metric, candidates: int = 60, sample: int = 200, seed: int = 0):
        by_kind = defaultdict(list)
        for row in train_rows:
            by_kind[kind_of(row)].append(row["text_target"])
        rng = random.Random(seed)
        self.templates = {}
        for kind, programs in sorted(by_kind.items()):
            references = rng.sample(programs, min(sample, len(programs)))
            pool = rng.sample(programs, min(candidates, len(programs)))
            scores = [chrf_metric.compute(predictions=[c] * len(references), references=references)["score"]
                      for c in pool]
            self.templates[kind] = pool[int(np.argmax(scores))]

    def predict(self, kinds) -> list[str]:
        missing = sorted(set(kinds) - set(self.templates))
        if missing:
            raise ValueError(f"the template baseline saw no training program of kinds {missing}")
        return [self.templates[kind] for kind in kinds]
