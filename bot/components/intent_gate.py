"""The out-of-scope gate of the E5IntentClassifier: a small logistic model on a few scores of the
classifier, deciding whether its best intent is answered or the message goes to ``nlu_fallback``.

Features of one message (``gate_features``):

* ``lr_logit``: logit of the logistic regression's top probability;
* ``mlp_logit``: logit of the MLP ensemble's top probability (mean log-probability of the MLPs,
  renormalised); 0 when the classifier has no MLPs;
* ``similarity``: cosine similarity to the nearest training example (raw e5 query view).

In-scope score = ``bias`` + Σ ``weights[f]`` × feature f; the message is answered when the score is
≥ 0. The weights and the bias are fitted offline (``fit_gate``, logistic regression of "in scope
and classified correctly" against "out of scope") and the bias is then shifted to the operating
point chosen on validation data: ``python -m bench.nlu.gate_fit`` does both and prints the
``gate`` block of config.yml (figures in bench/RESULTS.md, "Out-of-scope gate (issue 13)").

Why these three: on CLINC150 10-shot the top probabilities separate in-scope from out-of-scope
queries much better than the similarity (which is what a 10-shot training set makes sparse),
while on our own data the similarity is the stronger signal; both kinds are kept. Pure numpy: the
application's Python 3.11 environment (no Rasa) imports and tests this module directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

FEATURES = ("lr_logit", "mlp_logit", "similarity")
SCRIPTS = ("han", "cyrillic", "latin")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
# probabilities are clipped before the logit: a probability of 1.0 in float32 is common
_EPS = 1e-6


def text_script(text: str) -> str:
    """han, cyrillic or latin (anything else, digits and emoji included): the gateway's rule for
    the language (conversations/language.py), more Han than Cyrillic characters is Chinese."""
    han = len(_HAN.findall(text or ""))
    cyrillic = len(_CYRILLIC.findall(text or ""))
    if han and han >= cyrillic:
        return "han"
    return "cyrillic" if cyrillic else "latin"


def decline_reason(
    similarity: float,
    similarity_threshold: float,
    gate_score: Optional[float],
    lr_top: float,
    confidence_threshold: float,
) -> Optional[str]:
    """Why a message goes to nlu_fallback (None: answered): "similarity" below the threshold of
    its script, else "gate" when the gate's score < 0, else (no gate) "confidence" when the
    regression's top probability < confidence_threshold."""
    if similarity < similarity_threshold:
        return "similarity"
    if gate_score is not None:
        return "gate" if gate_score < 0 else None
    return "confidence" if lr_top < confidence_threshold else None


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) of probabilities clipped to [1e-6, 1 - 1e-6]."""
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(p / (1.0 - p))


def gate_features(lr_top: np.ndarray, mlp_top: Optional[np.ndarray], similarity: np.ndarray) -> Dict[str, np.ndarray]:
    """The gate's features of n messages from the regression's and the MLPs' top probabilities
    (n,) and the nearest-example similarities (n,)."""
    lr_top = np.asarray(lr_top, dtype=np.float64)
    return {
        "lr_logit": logit(lr_top),
        "mlp_logit": np.zeros_like(lr_top) if mlp_top is None else logit(mlp_top),
        "similarity": np.asarray(similarity, dtype=np.float64),
    }


@dataclass(frozen=True)
class InScopeGate:
    """score = bias + Σ weights[f] × f; in scope when score ≥ 0."""

    weights: Tuple[Tuple[str, float], ...]
    bias: float

    @classmethod
    def from_config(cls, config: Optional[Mapping[str, Any]]) -> Optional["InScopeGate"]:
        """The gate of a component config's ``gate`` entry ({weights: {feature: w}, bias: b}),
        None when the entry is empty. Raises ValueError with the reason on a malformed entry."""
        if not config:
            return None
        if not isinstance(config, Mapping) or set(config) - {"weights", "bias"}:
            raise ValueError(f"gate: expected {{weights: {{feature: weight}}, bias: number}}, got {config!r}")
        weights = config.get("weights")
        if not isinstance(weights, Mapping) or not weights:
            raise ValueError(f"gate: 'weights' must map features {FEATURES} to numbers, got {weights!r}")
        unknown = set(weights) - set(FEATURES)
        if unknown:
            raise ValueError(f"gate: unknown features {sorted(unknown)}, use {list(FEATURES)}")
        try:
            pairs = tuple((str(name), float(w)) for name, w in weights.items())
            bias = float(config.get("bias", 0.0))
        except (TypeError, ValueError) as e:
            raise ValueError(f"gate: weights and bias must be numbers ({e})") from e
        if not all(np.isfinite([w for _, w in pairs] + [bias])):
            raise ValueError("gate: weights and bias must be finite numbers")
        return cls(pairs, bias)

    def score(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """In-scope scores of n messages (≥ 0: answered)."""
        missing = [name for name, _ in self.weights if name not in features]
        if missing:
            raise KeyError(f"gate: features {missing} not computed")
        total = np.full(np.shape(features[self.weights[0][0]]), self.bias, dtype=np.float64)
        for name, weight in self.weights:
            total = total + weight * np.asarray(features[name], dtype=np.float64)
        return total

    def as_config(self) -> Dict[str, Any]:
        return {"weights": {name: round(w, 4) for name, w in self.weights}, "bias": round(self.bias, 4)}


def design(features: Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """(n, len(names)) matrix of the named features."""
    return np.stack([np.asarray(features[n], dtype=np.float64) for n in names], axis=1)


def fit_gate(
    positive: Mapping[str, np.ndarray],
    negative: Mapping[str, np.ndarray],
    names: Sequence[str] = FEATURES,
    C: float = 10.0,
) -> InScopeGate:
    """Logistic regression of positives (in scope, classified correctly) against negatives (out of
    scope): its log-odds as the gate, 0 = even odds (shift the bias with ``at_threshold``)."""
    from sklearn.linear_model import LogisticRegression

    X = np.vstack([design(positive, names), design(negative, names)])
    y = np.concatenate([np.ones(len(X) - len(negative[names[0]])), np.zeros(len(negative[names[0]]))])
    if len(set(y)) < 2:
        raise ValueError("fit_gate needs both positive and negative examples")
    model = LogisticRegression(C=C, max_iter=5000).fit(X, y)
    return InScopeGate(tuple(zip(names, map(float, model.coef_[0]), strict=True)), float(model.intercept_[0]))


def at_threshold(gate: InScopeGate, threshold: float) -> InScopeGate:
    """The same gate answering when its old score ≥ threshold."""
    return InScopeGate(gate.weights, gate.bias - threshold)
