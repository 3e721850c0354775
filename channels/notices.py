"""Polite notices the channels send themselves (the bot never sees these messages).

Written per language by hand rather than machine-converted so that each reads naturally;
Traditional Chinese is converted from Simplified with OpenCC like every other bot answer.
"""

from __future__ import annotations

from conversations import language as lang

__all__ = ["NOTICES", "button_hint", "notice", "pick_language"]

NOTICES: dict[str, dict[str, str]] = {
    "rate_limited": {
        "en": "You're sending messages faster than I can read them. Please wait a minute, then write again.",
        "zh": "您发送消息的速度有点快，我来不及看。请稍等一分钟再发。",
        "ru": "Вы отправляете сообщения быстрее, чем я успеваю их читать. Подождите минуту и напишите снова.",
    },
    "too_long": {
        "en": "That message is too long for me ({limit} characters at most). Could you send it shorter?",
        "zh": "这条消息太长了（最多 {limit} 个字符）。能请您简短一些再发一次吗？",
        "ru": "Это сообщение слишком длинное (не больше {limit} символов). Можно покороче?",
    },
    "unsupported": {
        "en": "Sorry, I can only read text messages. Please type your question.",
        "zh": "抱歉，我只能阅读文字消息。请用文字输入您的问题。",
        "ru": "Извините, я понимаю только текстовые сообщения. Напишите, пожалуйста, ваш вопрос текстом.",
    },
}

_BUTTON_HINT = {
    "en": "Reply with a number to choose.",
    "zh": "请回复数字进行选择。",
    "ru": "Ответьте цифрой, чтобы выбрать.",
}


def pick_language(hint: str | None) -> tuple[str, str | None]:
    """A channel's language hint (``en``, ``ru-RU``, ``zh-hant``, ``zh-TW``…) → (language, script)."""
    code = (hint or "").lower().replace("_", "-")
    if code.startswith("zh"):
        traditional = any(tag in code for tag in ("hant", "-tw", "-hk", "-mo"))
        return "zh", "hant" if traditional else "hans"
    if code.startswith("ru"):
        return "ru", None
    return "en", None


def _localise(texts: dict[str, str], language: str, script: str | None) -> str:
    text = texts.get(language, texts["en"])
    if language == "zh" and script == "hant":
        text = lang.to_traditional(text)
    return text


def notice(key: str, language: str, script: str | None = None, **values: object) -> str:
    return _localise(NOTICES[key], language, script).format(**values)


def button_hint(language: str, script: str | None = None) -> str:
    return _localise(_BUTTON_HINT, language, script)
