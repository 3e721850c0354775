"""A tiny Rasa project for the ops tests: three intents in three languages, a light pipeline.

Real ``rasa train`` on it takes well under a minute (most of it TensorFlow's import), so the
retrain → evaluate → gate → promote loop can run for real in a test. ``build(tmp)`` writes it;
``NEW_PHRASING`` is a wording the first model does not place and the annotated one does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from conversations.models import Conversation, Message, Turn
from storage.db import transaction

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

CONFIG = """\
recipe: default.v1
language: en
assistant_id: ops-test
pipeline:
  - name: WhitespaceTokenizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: LogisticRegressionClassifier
  - name: FallbackClassifier
    threshold: 0.5
policies:
  - name: RulePolicy
    core_fallback_threshold: 0.3
    enable_fallback_prediction: true
"""

DOMAIN = """\
version: "3.1"
intents:
  - greet
  - check_order_status
  - request_refund
entities:
  - order_id
slots:
  language:
    type: categorical
    values: [en, zh, ru]
    influence_conversation: false
    mappings:
      - type: custom
responses:
  utter_greet:
    - text: "hello!"
  utter_order:
    - text: "let me check your order"
  utter_refund:
    - text: "let me start a refund"
  utter_default:
    - text: "sorry, I did not get that"
session_config:
  session_expiration_time: 60
  carry_over_slots_to_new_session: true
"""

RULES = """\
version: "3.1"
rules:
- rule: greet
  steps:
  - intent: greet
  - action: utter_greet
- rule: order
  steps:
  - intent: check_order_status
  - action: utter_order
- rule: refund
  steps:
  - intent: request_refund
  - action: utter_refund
- rule: fallback
  steps:
  - intent: nlu_fallback
  - action: utter_default
"""

NLU = {
    "en": {
        "greet": ["hi", "hello", "hey there", "good morning", "hello bot", "hi team"],
        "check_order_status": ["where is my order", "order status", "has my order shipped",
                               "track my order [3348917502](order_id)", "when will my order arrive",
                               "status of order [5120648393](order_id)"],
        "request_refund": ["i want a refund", "refund my money", "give me my money back", "refund please",
                           "i would like a refund for my order", "can i get a refund"],
    },
    "zh": {
        "greet": ["你好", "您好", "嗨", "早上好", "在吗", "哈喽"],
        "check_order_status": ["我的订单在哪", "订单状态", "订单发货了吗", "查一下订单", "订单什么时候到", "查订单"],
        "request_refund": ["我要退款", "退钱", "申请退款", "能退款吗", "给我退款", "退款"],
    },
    "ru": {
        "greet": ["привет", "здравствуйте", "добрый день", "доброе утро", "привет бот", "хай"],
        "check_order_status": ["где мой заказ", "статус заказа", "заказ отправлен", "отследить заказ",
                               "когда придет заказ", "проверить заказ"],
        "request_refund": ["хочу вернуть деньги", "верните деньги", "возврат денег", "оформить возврат",
                           "хочу возврат", "можно вернуть деньги"],
    },
}

TESTS = {
    "en": {"greet": ["hello there", "hi bot"], "check_order_status": ["where's my order", "check my order status"],
           "request_refund": ["i need a refund", "money back please"]},
    "zh": {"greet": ["你好啊", "您好在吗"], "check_order_status": ["订单到哪了", "帮我查订单"],
           "request_refund": ["我想退款", "请退钱"]},
    "ru": {"greet": ["привет всем", "здравствуйте бот"], "check_order_status": ["где заказ", "статус моего заказа"],
           "request_refund": ["верните мои деньги", "нужен возврат денег"]},
}

STORIES = """\
version: "3.1"
stories:
- story: greet then order
  steps:
  - user: |
      hello
    intent: greet
  - action: utter_greet
  - user: |
      where is my order
    intent: check_order_status
  - action: utter_order
- story: refund
  steps:
  - user: |
      refund please
    intent: request_refund
  - action: utter_refund
"""

# Not placed by the first model (nlu_fallback); after annotation it is check_order_status.
NEW_PHRASING = "my shipment has gone missing"
NEW_PHRASING_2 = "the shipment has gone missing"


def _nlu_yaml(blocks: dict[str, list[str]]) -> str:
    out = ['version: "3.1"', "nlu:"]
    for intent, examples in blocks.items():
        out += [f"- intent: {intent}", "  examples: |", *[f"    - {e}" for e in examples]]
    return "\n".join(out) + "\n"


def build(root: Path) -> dict[str, Path]:
    """Write the project under ``root``; returns its paths."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "config.yml").write_text(CONFIG, encoding="utf-8")
    (root / "domain.yml").write_text(DOMAIN, encoding="utf-8")
    (root / "data" / "rules.yml").write_text(RULES, encoding="utf-8")
    for lang, blocks in NLU.items():
        (root / "nlu" / lang).mkdir(parents=True, exist_ok=True)
        (root / "nlu" / lang / "nlu.yml").write_text(_nlu_yaml(blocks), encoding="utf-8")
    (root / "tests_nlu").mkdir(exist_ok=True)
    for lang, blocks in TESTS.items():
        (root / "tests_nlu" / f"{lang}.yml").write_text(_nlu_yaml(blocks), encoding="utf-8")
    (root / "stories").mkdir(exist_ok=True)
    (root / "stories" / "test_stories.yml").write_text(STORIES, encoding="utf-8")
    return {
        "config": root / "config.yml", "domain": root / "domain.yml", "data": root / "data", "nlu": root / "nlu",
        "nlu_test_dir": root / "tests_nlu", "stories": root / "stories", "model_dir": root / "models",
    }  # fmt: skip


class Chat:
    """Writes a conversation the way the conversation service does (messages + turns)."""

    def __init__(self, sessions: sessionmaker[Session], sender: str, channel: str = "rest", language: str = "en",
                 start: datetime = T0) -> None:
        self.sessions, self.sender, self.channel, self.language, self.at = sessions, sender, channel, language, start
        with transaction(sessions) as db:
            conv = Conversation(sender_id=sender, channel=channel, language=language, state="bot", created_at=start,
                                updated_at=start)
            db.add(conv)
            db.flush()
            self.conv_id = conv.id

    def say(self, text: str, intent: str | None, confidence: float | None = 0.95, payload: str | None = None,
            reply: str = "ok", reply_type: str = "text", minutes: float = 1.0) -> int:
        self.at += timedelta(minutes=minutes)
        with transaction(self.sessions) as db:
            msg = Message(conversation_id=self.conv_id, direction="in", status="answered", type="text", text=text,
                          payload=payload, language=self.language, channel=self.channel, created_at=self.at)
            db.add(msg)
            db.flush()
            db.add(Message(conversation_id=self.conv_id, direction="out", reply_to_id=msg.id, type=reply_type, text=reply,
                           data={}, language=self.language, channel=self.channel, created_at=self.at))
            db.add(Turn(conversation_id=self.conv_id, message_id=msg.id, language=self.language, intent=intent,
                        confidence=confidence, intent_ranking=[{"name": intent, "confidence": confidence}], entities=[],
                        actions=[], slots={}, created_at=self.at))
            return msg.id
