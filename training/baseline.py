"""The lexical peer every aduan model is compared with: TF-IDF + LinearSVC.

Word 1-2-grams plus character 2-5-grams (within word boundaries), sublinear tf,
one LinearSVC per head. This is the strong, cheap classic for short noisy
Indonesian text. To report top-3 accuracy, calibration and coverage like the
model, its decision scores are turned into probabilities with a softmax whose
temperature is fitted on the same dev rows the model was calibrated on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

from data.text import normalize_text
from model.predict import calibrated
from training.calibration import fit_temperature


class TfidfBaseline:
    """One TF-IDF vocabulary shared by all heads, one LinearSVC per head."""

    name = "tfidf+linearsvc"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.vectorizer = FeatureUnion(
            [
                ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
                (
                    "char",
                    TfidfVectorizer(
                        analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2
                    ),
                ),
            ]
        )
        self.models: dict[str, LinearSVC] = {}
        self.temperatures: dict[str, float] = {}

    def fit(
        self,
        texts: Sequence[str],
        labels: dict[str, list[str | None]],
        dev_texts: Sequence[str] = (),
        dev_labels: dict[str, list[str | None]] | None = None,
        *,
        refit_with_dev: bool = False,
    ) -> TfidfBaseline:
        """Fit on the training rows, each head's temperature on the dev rows; with
        `refit_with_dev`, then fit again on both, keeping the temperatures (as a bundle
        trained with `TrainConfig.refit_with_dev` did)."""
        x = self.vectorizer.fit_transform([normalize_text(t) for t in texts])
        x_dev = (
            self.vectorizer.transform([normalize_text(t) for t in dev_texts]) if dev_texts else None
        )
        for head, values in labels.items():
            rows = [i for i, v in enumerate(values) if v is not None]
            model = LinearSVC(C=1.0, class_weight="balanced", random_state=self.seed)
            model.fit(x[rows], [values[i] for i in rows])
            self.models[head] = model
            self.temperatures[head] = 1.0
            if x_dev is not None and dev_labels is not None:
                pos = {c: i for i, c in enumerate(model.classes_)}
                gold = np.array([pos.get(v, -1) if v else -1 for v in dev_labels[head]])
                scores = self._scores(model, x_dev)
                known = gold >= 0
                self.temperatures[head] = fit_temperature(scores[known], gold[known])
        if refit_with_dev and dev_labels is not None and len(dev_texts):
            temperatures = dict(self.temperatures)
            both = {h: list(v) + list(dev_labels[h]) for h, v in labels.items()}
            self.fit([*texts, *dev_texts], both)
            self.temperatures = temperatures
        return self

    @staticmethod
    def _scores(model: LinearSVC, x: object) -> np.ndarray:
        scores = model.decision_function(x)
        if scores.ndim == 1:  # binary: one score for the positive class
            scores = np.stack([-scores, scores], axis=1)
        return np.asarray(scores, dtype=np.float64)

    def labels(self, head: str) -> list[str]:
        return [str(c) for c in self.models[head].classes_]

    def predict_proba(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        x = self.vectorizer.transform([normalize_text(t) for t in texts])
        return {
            head: calibrated(self._scores(model, x), self.temperatures[head])
            for head, model in self.models.items()
        }
