"""EntityDeduplicator: one entity per span, the regex extractor authoritative for the entity
types it owns (order_id, email, username, refund_method), and intent-gated entity types.

RegexEntityExtractor and CRFEntityExtractor both learn from the same annotations, so without
this every order id and email came out twice (once per extractor); and Rasa's training data
format has no per-extractor switch that our shared data files could use.

Intent gates: a pattern extractor has no context, so "can i pay with a debit card?"
(ask_question) would otherwise set the refund method; with the component placed after the
intent classifier, an entity type listed under ``intents`` is kept only for those intents (for
``nlu_fallback``, the best real intent of the ranking counts).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.components.base import NluComponent


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class EntityDeduplicator(NluComponent):
    """Drops duplicate entities; keeps only the authoritative extractor's entities of a type."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """Returns the component's default config."""
        return {
            # entity type -> the only extractor whose entities of that type are kept
            # (when that extractor found none, the others' are kept)
            "authoritative": {
                "order_id": "RegexEntityExtractor",
                "email": "RegexEntityExtractor",
                "username": "RegexEntityExtractor",
            },
            # entity type -> the intents whose messages may carry it (absent: any intent;
            # a message without an intent, e.g. in training, keeps everything)
            "intents": {},
        }

    def __init__(self, config: Dict[Text, Any]) -> None:
        """Creates the component."""
        self._authoritative: Dict[Text, Text] = dict(config.get("authoritative") or {})
        self._intents: Dict[Text, List[Text]] = {k: list(v) for k, v in (config.get("intents") or {}).items()}

    def filter(self, entities: List[Dict[Text, Any]], intent: Optional[Text] = None) -> List[Dict[Text, Any]]:
        """The filtered entity list (order kept); ``intent``: the message's intent, if known."""
        found_by = {(e.get("entity"), e.get("extractor")) for e in entities}
        out: List[Dict[Text, Any]] = []
        seen = set()
        for e in entities:
            etype = e.get("entity")
            allowed = self._intents.get(etype)
            if intent is not None and allowed is not None and intent not in allowed:
                continue
            owner = self._authoritative.get(etype)
            if owner and e.get("extractor") != owner and (etype, owner) in found_by:
                continue
            key = (etype, e.get("start"), e.get("end"), e.get("role"), e.get("group"))
            if key in seen:
                continue
            seen.add(key)
            out.append(e)
        return out

    def process(self, messages: List[Message]) -> List[Message]:
        """Filters the entities of each message."""
        for message in messages:
            entities = message.get(ENTITIES)
            if entities:
                message.set(ENTITIES, self.filter(entities, best_intent(message)), add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Training data is left as annotated."""
        return training_data


def best_intent(message: Message) -> Optional[Text]:
    """The message's intent; for nlu_fallback the best real intent of its ranking (the guess the
    two-stage fallback offers); None when no classifier has run."""
    name = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
    if name == DEFAULT_NLU_FALLBACK_INTENT_NAME:
        for candidate in message.get(INTENT_RANKING_KEY) or []:
            if candidate.get(INTENT_NAME_KEY) != DEFAULT_NLU_FALLBACK_INTENT_NAME:
                return candidate.get(INTENT_NAME_KEY)
    return name
