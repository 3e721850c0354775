"""The subject of each task in words ("地址", "адрес", "refund"…), in the normalised form of
``confirm.normalise``: whether a message names a task (conversations/topic.py, conversations/requests.py,
the change-of-mind guard of the forms)."""

from __future__ import annotations

import re

from conversations import confirm

TOPICS = {
    intent: re.compile("|".join(words), re.IGNORECASE)
    for intent, words in {
        "check_order_status": (r"\border", r"\bstatus", r"\bwhere", r"заказ", r"статус", r"\bгде\b", r"订单", r"到哪", r"状态"),
        "track_shipment": (r"\btrack", r"\bparcel", r"\bpackage", r"\bdeliver", r"\bship", r"\bcourier", r"посыл",
                           r"трек", r"отслед", r"достав", r"курьер", r"快递", r"物流", r"包裹", r"单号", r"配送", r"发货"),
        "refund_status": (r"\brefund", r"money", r"\bpaid back", r"возврат", r"деньг", r"退款", r"退钱", r"钱"),
        "request_refund": (r"\brefund", r"money", r"\bpay (?:me )?back", r"возвр", r"верн", r"деньг", r"退款", r"退钱", r"钱"),
        "return_item": (r"\breturn", r"send (?:it |them )?back", r"вернуть", r"возвр", r"退货", r"退回", r"退掉", r"退换"),
        "cancel_order": (r"\bcancel", r"отмен", r"取消", r"不要了"),
        "change_shipping_address": (r"\baddress", r"адрес", r"地址"),
        "reset_password": (r"password", r"\blog ?in", r"\bsign ?in", r"парол", r"войти", r"密码", r"登录", r"登陆"),
    }.items()
}


def names_task(intent: str, text: str) -> bool:
    """The message names the task's subject (an intent without listed words: always)."""
    words = TOPICS.get(intent)
    return words is None or words.search(confirm.normalise(text)) is not None
