"""Words the actions put into responses (statuses, membership levels, refund methods, intent
descriptions) in each language. Sentences themselves live in bot/domain.yml. Shared by the bot's actions
and the agent's ticket summary (handoff/context.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Labels = Mapping[str, Mapping[str, str]]

STATUS: Labels = {
    "processing": {"en": "processing", "zh": "备货中", "ru": "в обработке"},
    "shipped": {"en": "shipped", "zh": "已发货", "ru": "отправлен"},
    "delivered": {"en": "delivered", "zh": "已送达", "ru": "доставлен"},
    "cancelled": {"en": "cancelled", "zh": "已取消", "ru": "отменён"},
    "refund_requested": {"en": "refund requested", "zh": "退款处理中", "ru": "запрошен возврат"},
    "refunded": {"en": "refunded", "zh": "已退款", "ru": "деньги возвращены"},
}

MEMBERSHIP: Labels = {
    "guest": {"en": "guest", "zh": "访客", "ru": "гость"},
    "bronze": {"en": "bronze", "zh": "铜牌", "ru": "бронзовый"},
    "silver": {"en": "silver", "zh": "银牌", "ru": "серебряный"},
    "gold": {"en": "gold", "zh": "金牌", "ru": "золотой"},
}

REFUND_METHOD: Labels = {
    "credit_card": {"en": "credit card", "zh": "信用卡", "ru": "на банковскую карту"},
    "gift_card": {"en": "gift card", "zh": "礼品卡", "ru": "на подарочную карту"},
    "paper_check": {"en": "paper check", "zh": "纸质支票", "ru": "бумажным чеком"},
    "store_credit": {"en": "store credit", "zh": "店铺余额", "ru": "на баланс магазина"},
}

# The Yes/No buttons under a write's confirmation, per task (bot/actions/write_forms.py).
CONFIRM_BUTTONS: Labels = {
    "cancel.yes": {"en": "Yes, cancel it", "zh": "确定取消", "ru": "Да, отменить"},
    "cancel.no": {"en": "No, keep it", "zh": "不取消了", "ru": "Нет, оставить"},
    "address.yes": {"en": "Yes, change it", "zh": "确认修改", "ru": "Да, изменить"},
    "address.no": {"en": "No, leave it", "zh": "先不改", "ru": "Нет, не менять"},
    "refund.yes": {"en": "Yes, submit the refund", "zh": "确认退款", "ru": "Да, оформить возврат"},
    "refund.no": {"en": "No, not now", "zh": "先不退", "ru": "Нет, не сейчас"},
    "return.yes": {"en": "Yes, start the return", "zh": "确认退货", "ru": "Да, оформить возврат"},
    "return.no": {"en": "No, not now", "zh": "先不退", "ru": "Нет, не сейчас"},
    "reset.yes": {"en": "Yes, send the link", "zh": "发送链接", "ru": "Да, отправить"},
    "reset.no": {"en": "No, don't send", "zh": "先不发", "ru": "Нет, не отправлять"},
}

INTENT: Labels = {
    "greet": {"en": "saying hello", "zh": "打招呼", "ru": "поздороваться"},
    "goodbye": {"en": "ending the chat", "zh": "结束对话", "ru": "завершить разговор"},
    "thanks": {"en": "saying thanks", "zh": "表示感谢", "ru": "поблагодарить"},
    "affirm": {"en": "yes", "zh": "是的", "ru": "да"},
    "deny": {"en": "no", "zh": "不是", "ru": "нет"},
    "stop": {"en": "stopping what we're doing", "zh": "中止当前操作", "ru": "прекратить текущее действие"},
    "bot_challenge": {"en": "asking whether I'm a bot", "zh": "询问我是不是机器人", "ru": "узнать, бот ли я"},
    "out_of_scope": {"en": "something else", "zh": "其他问题", "ru": "что-то другое"},
    "human_handoff": {"en": "talking to a person", "zh": "转人工客服", "ru": "связаться с сотрудником"},
    "check_order_status": {"en": "checking an order's status", "zh": "查询订单状态", "ru": "узнать статус заказа"},
    "track_shipment": {"en": "tracking a parcel", "zh": "查询物流", "ru": "отследить посылку"},
    "request_refund": {"en": "getting a refund", "zh": "申请退款", "ru": "оформить возврат денег"},
    "refund_status": {"en": "checking a refund", "zh": "查询退款进度", "ru": "узнать статус возврата денег"},
    "return_item": {"en": "returning an item", "zh": "退货", "ru": "вернуть товар"},
    "cancel_order": {"en": "cancelling an order", "zh": "取消订单", "ru": "отменить заказ"},
    "change_shipping_address": {
        "en": "changing the delivery address",
        "zh": "修改收货地址",
        "ru": "изменить адрес доставки",
    },
    "reset_password": {"en": "resetting your password", "zh": "重置密码", "ru": "сбросить пароль"},
    "ask_question": {"en": "a question about our store", "zh": "咨询店铺相关问题", "ru": "вопрос о магазине"},
    "inform": {"en": "giving me details", "zh": "提供信息", "ru": "сообщить данные"},
}


def label(table: Labels, key: str, language: str | None) -> str:
    """The word for ``key`` in ``language``, falling back to English, then to the key itself."""
    entry = table.get(key)
    if entry is None:
        return key
    return entry.get(language or "en") or entry["en"]


def language(tracker: Any) -> str:
    """The conversation's language slot (en, zh or ru; Traditional Chinese is zh, converted on the way out)."""
    return tracker.get_slot("language") or "en"
