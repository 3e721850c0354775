"""IntentCues: words that tell two confusable intents apart, after the classifier.

Some intents share nearly all their words and differ in one cue the sentence embedding weighs
lightly: a refund asked for ("can I still get a refund on it?", "хочу вернуть деньги", "我要退款")
against the status of one already asked for ("did you ever pay back my refund", "мне вернули деньги
за ботинки?", "退款到账了吗"). The classifier read such status questions as new refund requests at
0.6-0.8, and a refund form started for a refund that was already paid.

For each configured pair, when the classifier's top intent is one of the two, the message has a cue
of the other and none of its own, and the other intent is in the ranking, the two change places:
the other intent takes the top with the top's confidence (the ranking keeps every other entry).
Cues are regular expressions matched case-insensitively on the text the NLU reads (Traditional
Chinese arrives as Simplified). Nothing is learned: the component has no training step.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Pattern, Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.components.base import NluComponent

CUES_KEY = "cued_from"  # set on the intent when a cue changed it: the classifier's own top intent


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class IntentCues(NluComponent):
    """Swaps the top intent of a confusable pair when only the other intent's cue is in the text."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # [{intent: [regex, ...], other_intent: [regex, ...]}, ...]: each item a pair of intents
            "pairs": [],
        }

    def __init__(self, config: Dict[Text, Any]) -> None:
        self.pairs: List[Dict[Text, List[Pattern[str]]]] = []
        for pair in config.get("pairs") or []:
            if not isinstance(pair, dict) or len(pair) != 2:
                raise ValueError(f"IntentCues: each item of pairs must map two intents to their cues, got {pair!r}")
            try:
                self.pairs.append(
                    {intent: [re.compile(p, re.IGNORECASE) for p in cues] for intent, cues in pair.items()}
                )
            except re.error as e:
                raise ValueError(f"IntentCues: bad cue pattern: {e}") from e

    def cued(self, text: Text, top: Text, ranked: List[Text]) -> Text:
        """The intent the message has, given the classifier's ``top`` and its ranked intents."""
        for pair in self.pairs:
            if top not in pair:
                continue
            other = next(i for i in pair if i != top)
            if other not in ranked:
                continue
            own = any(p.search(text) for p in pair[top])
            if not own and any(p.search(text) for p in pair[other]):
                return other
        return top

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            intent = message.get(INTENT) or {}
            top = intent.get(INTENT_NAME_KEY)
            ranking = list(message.get(INTENT_RANKING_KEY) or [])
            if not top or not ranking:
                continue
            cued = self.cued(message.get(TEXT) or "", top, [r.get(INTENT_NAME_KEY) for r in ranking])
            if cued == top:
                continue
            confidence = intent.get("confidence")
            other = next(r for r in ranking if r.get(INTENT_NAME_KEY) == cued)
            swapped = {**other, "confidence": confidence}
            rest = [
                ({**r, "confidence": other.get("confidence")} if r.get(INTENT_NAME_KEY) == top else r)
                for r in ranking
                if r.get(INTENT_NAME_KEY) != cued
            ]
            rest.sort(key=lambda r: -float(r.get("confidence") or 0.0))
            message.set(INTENT, {**intent, INTENT_NAME_KEY: cued, CUES_KEY: top}, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [swapped, *rest], add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
