"""E5IntentClassifier: logistic regression on e5 sentence features, with out-of-scope gating.

* Features: the dense sentence features of the configured origins (default: e5 views ``e5_query``
  and ``e5_passage``), each centred on the training mean and re-normalised (e5's vectors share a
  large common component: +0.3 to +4 points at 10-shot, bench/RESULTS.md), concatenated.
* Classifier: multinomial logistic regression (scikit-learn, lbfgs) with a weak regulariser
  (C=100): with 10 examples per intent a high C was worth +6 points over C=1. Beside it, an
  ensemble of ``mlp_ensemble`` one-hidden-layer MLPs (1024 ReLU units, seeded) on the same
  features: the intent is the argmax of the MLPs' mean log-probability plus the logistic
  regression's (CLINC150 10-shot, chosen on the validation split: +0.6 points in-scope accuracy
  over the regression alone; text augmentation, embedding noise, mixup and other heads did not
  help, bench/RESULTS.md). The ranking's confidences are the normalised geometric mean of the
  two (the MLPs alone are overconfident).
* Out of scope: ``nlu_fallback`` when the cosine similarity to the nearest training example (raw
  ``e5_query`` space) is below the threshold of the message's script (``similarity_thresholds``:
  han, cyrillic, latin, else ``similarity_threshold``; e5 puts short Chinese texts closer to
  everything), or when the out-of-scope gate declines it (``gate``, bot/components/intent_gate.py:
  a logistic model on the regression's and the MLPs' top probabilities and the similarity, fitted
  by ``python -m bench.nlu.gate_fit``); without a ``gate``, when the regression's top probability
  < ``confidence_threshold``. As Rasa's FallbackClassifier does, ``nlu_fallback`` goes on top of
  ``intent_ranking`` with the real intents below it (the two-stage fallback offers the best
  guess). ``intent`` carries ``similarity``, ``gate_confidence`` (the regression's top
  probability), ``gate_score``, ``script`` and ``fallback_reason`` (similarity, gate, confidence).
* Persistence: plain numpy arrays (``np.savez``, loaded with ``allow_pickle=False``) and JSON in
  the component's model-storage resource: no pickle, nothing executable is ever loaded.
  Prediction is numpy only.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Text, Tuple

import numpy as np
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import (
    FEATURE_TYPE_SENTENCE,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.components.base import SavedModelComponent, l2_normalise
from bot.components.intent_gate import SCRIPTS, InScopeGate, decline_reason, gate_features, text_script

logger = logging.getLogger(__name__)

SIMILARITY_KEY = "similarity"
# the logistic regression's top probability: what confidence_threshold is compared with
GATE_KEY = "gate_confidence"
# the out-of-scope gate's in-scope score (answered when >= 0), with a configured gate
GATE_SCORE_KEY = "gate_score"
FALLBACK_REASON_KEY = "fallback_reason"
# the writing system whose similarity threshold was applied
SCRIPT_KEY = "script"


def _sentence_block(message: Message, origin: Text) -> Optional[np.ndarray]:
    """The dense sentence feature vector of one featurizer origin, or None."""
    for feat in message.features:
        if feat.attribute == TEXT and feat.type == FEATURE_TYPE_SENTENCE and feat.is_dense() and feat.origin == origin:
            return np.asarray(feat.features, dtype=np.float32).reshape(-1)
    return None


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class E5IntentClassifier(SavedModelComponent, IntentClassifier):
    """Logistic regression on e5 sentence features with nearest-example OOS gating."""

    REQUIRES = [DenseFeaturizer]
    PACKAGES = ["sklearn", "numpy"]
    MODEL_FILE = "e5_intent_classifier.npz"
    META_FILE = "e5_intent_classifier.json"

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """The component's default config; the figures behind each default are in
        bench/RESULTS.md (## NLU)."""
        return {
            # dense sentence feature origins used as classifier input (E5Featurizer names
            # them "<alias>_<prefix>")
            "feature_origins": ["e5_query", "e5_passage"],
            # origin whose raw vectors give the nearest-training-example cosine similarity
            "similarity_origin": "e5_query",
            # centre each view on the training mean and re-normalise
            "center": True,
            # inverse regularisation strength of the logistic regression
            "C": 100.0,
            "max_iter": 3000,
            # None or "balanced"
            "class_weight": None,
            # add each intent's name ("check_order_status" -> "check order status"), embedded
            # with e5, as one more training example of that intent (not used for similarity)
            "intent_name_examples": True,
            # message -> nlu_fallback when cosine to the nearest training example < this
            "similarity_threshold": 0.84,
            # ... per writing system of the message ({han|cyrillic|latin: threshold}); a script
            # not listed uses similarity_threshold
            "similarity_thresholds": {},
            # ... or when the out-of-scope gate's score < 0: {weights: {lr_logit, mlp_logit,
            # similarity: number}, bias: number} (bot/components/intent_gate.py)
            "gate": {},
            # ... or, without a gate, when the regression's top probability < this
            "confidence_threshold": 0.3,
            # intents never answered with nlu_fallback (e.g. an explicit out_of_scope intent
            # is already a refusal); empty by default
            "no_fallback_intents": [],
            # number of intents in intent_ranking (0 = all)
            "ranking_length": 10,
            # MLPs blended with the regression (0 = none), hidden width, L2 penalty, epochs
            # (scikit-learn MLPClassifier, adam); MLP k is seeded mlp_seed + k
            "mlp_ensemble": 3,
            "mlp_hidden": 1024,
            "mlp_alpha": 1e-3,
            "mlp_max_iter": 300,
            "mlp_seed": 0,
            "random_seed": 42,
        }

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        model: Optional[Dict[Text, np.ndarray]] = None,
        labels: Optional[List[Text]] = None,
    ) -> None:
        """Creates the classifier (trained when ``model`` and ``labels`` are given)."""
        super().__init__(config, model_storage, resource, model)
        self.labels = labels or []
        self.origins: List[Text] = list(config["feature_origins"])
        unknown = set(config.get("similarity_thresholds") or {}) - set(SCRIPTS)
        if unknown:
            raise ValueError(
                f"E5IntentClassifier: similarity_thresholds has unknown scripts {sorted(unknown)}, use {SCRIPTS}"
            )
        try:
            self.gate = InScopeGate.from_config(config.get("gate"))
        except ValueError as e:
            raise ValueError(f"E5IntentClassifier: {e}") from e

    # ------------------------------------------------------------------ features
    def _blocks(self, messages: List[Message]) -> Tuple[List[np.ndarray], List[int]]:
        """Per-origin raw feature matrices for the messages that have all of them."""
        rows: List[List[np.ndarray]] = [[] for _ in self.origins]
        keep: List[int] = []
        for i, message in enumerate(messages):
            vecs = [_sentence_block(message, o) for o in self.origins]
            if any(v is None for v in vecs):
                continue
            keep.append(i)
            for r, v in zip(rows, vecs, strict=True):
                r.append(v)
        return [np.stack(r) if r else np.zeros((0, 0), np.float32) for r in rows], keep

    def _design(self, blocks: List[np.ndarray], means: List[np.ndarray]) -> np.ndarray:
        parts = []
        for block, mean in zip(blocks, means, strict=True):
            parts.append(l2_normalise(block - mean) if self.component_config["center"] else l2_normalise(block))
        return np.hstack(parts).astype(np.float32)

    # ------------------------------------------------------------------ training
    def train(self, training_data: TrainingData) -> Resource:
        """Trains the logistic regression on the intent examples."""
        from sklearn.linear_model import LogisticRegression

        examples = [e for e in training_data.intent_examples if e.get(TEXT)]
        blocks, keep = self._blocks(examples)
        if len(keep) < len(examples):
            logger.warning(
                f"E5IntentClassifier: {len(examples) - len(keep)} training examples lack "
                f"the features {self.origins}; they are skipped."
            )
        intents = [examples[i].get(INTENT) for i in keep]
        labels = sorted(set(intents))
        if len(labels) < 2:
            logger.warning("E5IntentClassifier: fewer than 2 intents, nothing to train.")
            return self._resource

        t0 = time.perf_counter()
        means = [b.mean(axis=0) for b in blocks]
        X = self._design(blocks, means)
        index = {lab: i for i, lab in enumerate(labels)}
        y = np.array([index[i] for i in intents])
        n_examples = len(y)
        if self.component_config["intent_name_examples"]:
            names = self._embed_intent_names(labels)
            if names is not None:
                X = np.vstack([X, self._design(names, means)])
                y = np.concatenate([y, np.arange(len(labels))])
        clf = LogisticRegression(
            C=float(self.component_config["C"]),
            max_iter=int(self.component_config["max_iter"]),
            class_weight=self.component_config["class_weight"],
            random_state=self.component_config["random_seed"],
        )
        clf.fit(X, y)
        mlps = self._fit_mlps(X, y)
        sim_vectors = l2_normalise(
            np.stack([_sentence_block(examples[i], self.component_config["similarity_origin"]) for i in keep])
        ).astype(np.float32)
        self.model = {
            "coef": clf.coef_.astype(np.float32),
            "intercept": clf.intercept_.astype(np.float32),
            "sim_vectors": sim_vectors,
            "sim_labels": y[:n_examples].astype(np.int32),
        }
        for k, mean in enumerate(means):
            self.model[f"mean_{k}"] = mean.astype(np.float32)
        for k, layers in enumerate(mlps):
            for name, array in layers.items():
                self.model[f"mlp_{k}_{name}"] = array
        self.labels = labels
        logger.info(
            f"E5IntentClassifier: {len(labels)} intents, {len(keep)} examples, "
            f"X {X.shape}, fitted in {time.perf_counter() - t0:.2f}s"
        )
        self.persist()
        return self._resource

    def _fit_mlps(self, X: np.ndarray, y: np.ndarray) -> List[Dict[Text, np.ndarray]]:
        """Weights of ``mlp_ensemble`` MLPs (as float32 arrays: prediction needs no scikit-learn)."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        cfg = self.component_config
        out = []
        for seed in range(int(cfg["mlp_ensemble"])):
            mlp = MLPClassifier(
                hidden_layer_sizes=(int(cfg["mlp_hidden"]),),
                activation="relu",
                solver="adam",
                alpha=float(cfg["mlp_alpha"]),
                max_iter=int(cfg["mlp_max_iter"]),
                random_state=int(cfg.get("mlp_seed", 0)) + seed,
            )
            with warnings.catch_warnings():
                # a few-shot set is fitted exactly long before the loss stops moving
                warnings.simplefilter("ignore", ConvergenceWarning)
                mlp.fit(X, y)
            out.append(
                {
                    "w1": mlp.coefs_[0].astype(np.float32),
                    "b1": mlp.intercepts_[0].astype(np.float32),
                    "w2": mlp.coefs_[1].astype(np.float32),
                    "b2": mlp.intercepts_[1].astype(np.float32),
                }
            )
        return out

    def _mlp_log_probs(self, X: np.ndarray) -> Optional[np.ndarray]:
        """Mean log-probability of the trained MLPs, None when there are none."""
        assert self.model is not None
        logs = []
        k = 0
        while f"mlp_{k}_w1" in self.model:
            hidden = np.maximum(X @ self.model[f"mlp_{k}_w1"] + self.model[f"mlp_{k}_b1"], 0.0)
            z = hidden @ self.model[f"mlp_{k}_w2"] + self.model[f"mlp_{k}_b2"]
            if z.shape[1] == 1:  # two intents: scikit-learn fits one logistic output
                z = np.hstack([np.zeros_like(z), z])
            logs.append(_log_softmax(z))
            k += 1
        return np.mean(logs, axis=0) if logs else None

    def _embed_intent_names(self, labels: List[Text]) -> Optional[List[np.ndarray]]:
        """e5 vectors of the intent names, one block per feature origin (None if an origin is
        not an E5Featurizer view such as "e5_query")."""
        from bot.components.e5_featurizer import PREFIXES, embed_texts

        texts = [label.replace("_", " ").strip() for label in labels]
        blocks = []
        for origin in self.origins:
            prefix = origin.rsplit("_", 1)[-1]
            if prefix not in PREFIXES:
                logger.warning(
                    f"E5IntentClassifier: intent_name_examples needs E5Featurizer features, "
                    f"'{origin}' is not one; intent names are not added."
                )
                return None
            blocks.append(embed_texts(texts, prefix))
        return blocks

    def metadata(self) -> Dict[Text, Any]:
        """The intent labels (in the order of the model's outputs) and the feature origins."""
        return {"labels": self.labels, "origins": self.origins}

    @classmethod
    def restored(cls, config: Dict[Text, Any], meta: Dict[Text, Any]) -> Tuple[Dict[Text, Any], Dict[Text, Any]]:
        """The saved model's feature origins replace the configured ones; its labels are passed on."""
        return {**config, "feature_origins": meta["origins"]}, {"labels": meta["labels"]}

    # ------------------------------------------------------------------ inference
    def predict(self, messages: List[Message]) -> Tuple[np.ndarray, Dict[Text, np.ndarray], List[int]]:
        """Ranking probabilities (n, n_intents), the out-of-scope scores of each message (n,):
        ``lr_top`` (the regression's top probability), ``mlp_top`` (the MLPs', when there are
        MLPs), ``similarity`` (to the nearest training example); and the kept indices."""
        assert self.model is not None
        blocks, keep = self._blocks(messages)
        if not keep:
            return np.zeros((0, len(self.labels))), {"lr_top": np.zeros(0), "similarity": np.zeros(0)}, keep
        means = [self.model[f"mean_{k}"] for k in range(len(self.origins))]
        X = self._design(blocks, means)
        lr_log = _log_softmax(X @ self.model["coef"].T + self.model["intercept"])
        mlp_log = self._mlp_log_probs(X)
        probs = np.exp(lr_log) if mlp_log is None else _softmax((lr_log + mlp_log) / 2)
        sim_raw = np.stack([_sentence_block(messages[i], self.component_config["similarity_origin"]) for i in keep])
        scores = {
            "lr_top": np.exp(lr_log.max(axis=1)),
            "similarity": (l2_normalise(sim_raw) @ self.model["sim_vectors"].T).max(axis=1),
        }
        if mlp_log is not None:
            scores["mlp_top"] = np.exp(_log_softmax(mlp_log).max(axis=1))
        return probs, scores, keep

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets ``intent`` and ``intent_ranking`` on each message."""
        if self.model is None or not self.labels:
            for message in messages:
                message.set(INTENT, {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, add_to_output=True)
                message.set(INTENT_RANKING_KEY, [], add_to_output=True)
            return messages
        probs, scores, keep = self.predict(messages)
        gate_scores = None
        if self.gate is not None:
            features = gate_features(scores["lr_top"], scores.get("mlp_top"), scores["similarity"])
            gate_scores = self.gate.score(features)
        done = set()
        for row, i in enumerate(keep):
            self._set_prediction(
                messages[i],
                probs[row],
                float(scores["lr_top"][row]),
                float(scores["similarity"][row]),
                None if gate_scores is None else float(gate_scores[row]),
            )
            done.add(i)
        for i, message in enumerate(messages):
            if i not in done:
                message.set(INTENT, {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, add_to_output=True)
                message.set(INTENT_RANKING_KEY, [], add_to_output=True)
        return messages

    def similarity_threshold(self, script: Text) -> float:
        """The similarity threshold of a writing system."""
        cfg = self.component_config
        return float((cfg.get("similarity_thresholds") or {}).get(script, cfg["similarity_threshold"]))

    def _set_prediction(
        self, message: Message, probs: np.ndarray, gate: float, similarity: float, gate_score: Optional[float] = None
    ) -> None:
        """gate: the regression's top probability; gate_score: the gate's score (declined < 0)."""
        cfg = self.component_config
        order = np.argsort(-probs)
        n = int(cfg["ranking_length"]) or len(order)
        ranking = [{INTENT_NAME_KEY: self.labels[j], PREDICTED_CONFIDENCE_KEY: float(probs[j])} for j in order[:n]]
        top = dict(ranking[0])
        top[SIMILARITY_KEY] = round(similarity, 4)
        top[GATE_KEY] = round(gate, 4)
        if gate_score is not None:
            top[GATE_SCORE_KEY] = round(gate_score, 4)
        script = text_script(message.get(TEXT))
        top[SCRIPT_KEY] = script
        reason = None
        if top[INTENT_NAME_KEY] not in (cfg.get("no_fallback_intents") or []):
            reason = decline_reason(
                similarity, self.similarity_threshold(script), gate_score, gate, float(cfg["confidence_threshold"])
            )
        if reason:
            # like FallbackClassifier: nlu_fallback on top, the real intents kept below it;
            # its confidence is the threshold it fell under, or the top intent's confidence
            # when that is higher, so the ranking stays sorted
            fallback = {
                INTENT_NAME_KEY: DEFAULT_NLU_FALLBACK_INTENT_NAME,
                PREDICTED_CONFIDENCE_KEY: max(float(cfg["confidence_threshold"]), top[PREDICTED_CONFIDENCE_KEY]),
            }
            intent = {
                **fallback,
                SIMILARITY_KEY: top[SIMILARITY_KEY],
                GATE_KEY: top[GATE_KEY],
                **({GATE_SCORE_KEY: top[GATE_SCORE_KEY]} if gate_score is not None else {}),
                SCRIPT_KEY: script,
                FALLBACK_REASON_KEY: reason,
            }
            ranking = [fallback] + ranking
        else:
            intent = top
        message.set(INTENT, intent, add_to_output=True)
        message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
