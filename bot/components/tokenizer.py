"""MultilingualTokenizer: jieba for Han runs, word tokens for Latin/Cyrillic/digits.

Emails and 10-digit order ids are kept whole so that RegexEntityExtractor / CRFEntityExtractor
can map them to single tokens; offsets always index into the original message text.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Optional, Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.training_data.message import Message

from bot.components.base import NluComponent

logger = logging.getLogger(__name__)

# CJK Unified Ideographs (+ Extension A, compatibility ideographs, Extensions B-F, 〇).
# Simplified and Traditional characters both live here.
HAN = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
EMAIL = r"[A-Za-z0-9](?:[A-Za-z0-9._%+-]*[A-Za-z0-9_%+-])?@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
ORDER_ID = r"(?<!\d)\d{10}(?!\d)"
# a word: letters/digits of any non-Han script, optionally joined by an apostrophe (don't, it's)
WORD = rf"[^\W_{HAN}]+(?:['’][^\W_{HAN}]+)*"

TOKEN_RE = re.compile(rf"(?P<email>{EMAIL})|(?P<order_id>{ORDER_ID})|(?P<han>[{HAN}]+)|(?P<word>{WORD})")

_jieba = None
_T2S: Optional[Dict[int, str]] = None


def _t2s_table() -> Dict[int, str]:
    """Traditional -> Simplified, character to character (keeps string length and offsets)."""
    global _T2S
    if _T2S is None:
        import os

        table: Dict[int, str] = {}
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "t2s_chars.txt")
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("#"):
                    continue
                line = line.rstrip("\n")
                for i in range(0, len(line) - 1, 2):
                    table[ord(line[i])] = line[i + 1]
        _T2S = table
    return _T2S


def to_simplified(text: Text) -> Text:
    """Maps Traditional characters to Simplified ones, one to one (same length)."""
    return text.translate(_t2s_table())


def _get_jieba() -> Any:
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _jieba = jieba
    return _jieba


def split_text(text: Text) -> List[tuple]:
    """Returns [(token_text, start, end, kind)] for ``text`` (kind: email/order_id/han/word)."""
    out = []
    for m in TOKEN_RE.finditer(text):
        kind = m.lastgroup
        if kind == "han":
            # jieba's dictionary is Simplified: segment a Simplified copy of the run (same
            # length, so jieba's offsets are valid for the original) and return original text
            base, run = m.start(), m.group()
            for _word, start, end in _get_jieba().tokenize(to_simplified(run), HMM=True):
                out.append((run[start:end], base + start, base + end, kind))
        else:
            out.append((m.group(), m.start(), m.end(), kind))
    return out


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class MultilingualTokenizer(Tokenizer, NluComponent):
    """Tokenizes mixed English / Chinese (Simplified+Traditional) / Russian text."""

    PACKAGES = ["jieba"]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """Returns the component's default config."""
        return {
            # lower-case token text (offsets unchanged); CRF builds its own lower feature
            "lowercase": False,
            # optional jieba user dictionary (one "word [freq] [tag]" a line)
            "dictionary_path": None,
            "intent_tokenization_flag": False,
            "intent_split_symbol": "_",
            "token_pattern": None,
            "prefix_separator_symbol": None,
        }

    @staticmethod
    def supported_languages() -> Optional[List[Text]]:
        """Any language: scripts are detected per character run."""
        return None

    def __init__(self, config: Dict[Text, Any]) -> None:
        """Creates the tokenizer."""
        super().__init__(config)
        self._lowercase = bool(config.get("lowercase", False))
        _get_jieba()  # load jieba's dictionary now (~1 s), not on the first Chinese message
        if config.get("dictionary_path"):
            _get_jieba().load_userdict(config["dictionary_path"])

    def tokenize(self, message: Message, attribute: Text) -> List[Token]:
        """Tokenizes the text of the given attribute of the message."""
        text = message.get(attribute) or ""
        tokens = []
        for word, start, end, _kind in split_text(text):
            tokens.append(Token(word.lower() if self._lowercase else word, start, end))
        if not tokens and text.strip():
            # nothing but punctuation / emoji: keep the whole text as one token, as the
            # WhitespaceTokenizer does, so that every message has at least one token
            stripped = text.strip()
            start = text.index(stripped)
            tokens = [Token(stripped, start, start + len(stripped))]
        return self._apply_token_pattern(tokens)
