"""Polite notices the channels send themselves (the bot never sees these messages), and the
conversation's script applied to every text the gateway writes for a customer.

Written per language by hand rather than machine-converted so that each reads naturally;
Traditional Chinese is converted from Simplified with OpenCC like every other bot answer.
``in_script`` does the same for gateway-written messages (handoff notices, an agent's name), so
a zh-Hant customer never reads Simplified characters in them on any channel.
"""

from __future__ import annotations

from dataclasses import replace

from conversations import language as lang
from conversations.service import OutboundMessage

__all__ = ["NOTICES", "agent_label", "button_hint", "in_script", "notice", "pick_language", "traditional"]

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

# Between an agent's name and their words in channels that only carry text ("Anna: …", "王伟：…").
_LABEL_SEPARATOR = {"zh": "："}

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
    if traditional(language, script):
        text = lang.to_traditional(text)
    return text


def notice(key: str, language: str, script: str | None = None, **values: object) -> str:
    return _localise(NOTICES[key], language, script).format(**values)


def button_hint(language: str, script: str | None = None) -> str:
    return _localise(_BUTTON_HINT, language, script)


def traditional(language: str | None, script: str | None) -> bool:
    return language == "zh" and script == "hant"


def agent_label(name: str | None, language: str, script: str | None = None) -> tuple[str, str] | None:
    """(who, separator) in front of an agent's words, as the widget labels them: the agent's display
    name in the customer's script, then ": " (Chinese "："). None without a name."""
    who = (name or "").strip()
    if not who:
        return None
    return lang.to_traditional(who) if traditional(language, script) else who, _LABEL_SEPARATOR.get(language, ": ")


def in_script(messages: list[OutboundMessage], language: str | None, script: str | None) -> list[OutboundMessage]:
    """Gateway-written messages in the conversation's script: Simplified → Traditional for zh-Hant.

    Texts, button titles, source titles and the agent's name are converted; an agent's own words
    (type ``agent``) are left as the person wrote them. Other conversations get ``messages`` back.
    """
    if not traditional(language, script):
        return messages
    t = lang.to_traditional
    return [
        replace(
            m,
            text=m.text if m.type == "agent" else t(m.text),
            buttons=[{**b, "title": t(b.get("title", ""))} for b in m.buttons],
            sources=[{**s, "title": t(s.get("title", ""))} for s in m.sources],
            agent=t(m.agent) if m.agent else m.agent,
        )
        for m in messages
    ]
