"""What the handoff tells the customer, in each language (English is the fallback).

These are sent by the gateway (queue updates, agent joined, rating) as well as by the Rasa action,
so they live here rather than in bot/domain.yml.
"""

from __future__ import annotations

from typing import Any

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "queued": "I'm connecting you with a person from our team. You're number {position} in the queue, about {minutes} minutes.",
        "queued_again": "You're still in the queue for a person: number {position}, about {minutes} minutes. I can keep helping meanwhile.",
        "position": "(You're number {position} in the queue for a person, about {minutes} minutes.)",
        "position_closed": "(You're number {position} in the queue for a person; our team is back {when}, {tz} time.)",
        "position_no_agent": "(You're number {position} in the queue for a person; the first free person will answer.)",
        "queued_ack": "Thanks for waiting. A person from our team will answer here; meanwhile I can help with anything else.",
        "assigned": "{agent} from our team has joined the chat.",
        "closed_until": "Our team for this is offline right now; they're back {when} ({tz} time). Your request is saved with the whole conversation, and they will answer then.",
        "no_agent": "Everyone in our team is busy right now. Your request is saved with the whole conversation, and the first free person will answer.",
        "ask_email": "This chat can't reach you later, so please leave an email address where we can answer you.",
        "email_saved": "Thanks — we'll write to {email} if you're no longer here when our team answers.",
        "offer_failure": "I'm sorry I couldn't help with this. Would you like me to connect you with a person?",
        "offer_frustration": "I'm sorry this has been frustrating. Would you like to talk to a person from our team?",
        "yes": "Yes, please",
        "no": "No, thanks",
        "offer_declined": "OK, let's keep going. You can ask for a person at any time.",
        "rule_escalated": "I've passed this to a person from our team straight away.",
        "refund_escalated": "A person from our team will review the refund of {amount} for order {order_id}.",
        "handed_back": "You're back with the assistant. How else can I help?",
        "resolved": "{agent} has closed this conversation. How would you rate the help you got, from 1 (poor) to 5 (excellent)?",
        "csat_comment": "Thank you! Anything you'd like to add? Write a comment, or choose Skip.",
        "csat_skip": "Skip",
        "csat_thanks": "Thank you for your feedback. If you need anything else, just ask.",
        "requeued": "Sorry for the wait. I'm finding someone else from our team for you — you're number {position} in the queue.",
        "agent_nudge": "Thanks for your patience — {agent} will reply shortly.",
        "abandoned": "As we didn't hear back, I've closed the request for a person. Ask again any time.",
        "idle_closed": "This chat with our team was closed after a period of inactivity. Ask for a person again any time.",
        "transferred": "I'm transferring you to a colleague who can help better with this.",
        "ticket_cap": "Your request is already with our team, together with this conversation, so I won't open another one today. They will get back to you; meanwhile I can keep helping here.",
    },
    "zh": {
        "queued": "正在为您转接人工客服。您排在第 {position} 位，预计等待约 {minutes} 分钟。",
        "queued_again": "您仍在人工客服的队列中：第 {position} 位，预计约 {minutes} 分钟。在此期间我可以继续为您服务。",
        "position": "（您在人工客服队列中排第 {position} 位，预计约 {minutes} 分钟。）",
        "position_closed": "（您在人工客服队列中排第 {position} 位；团队将于 {when}（{tz} 时间）上线。）",
        "position_no_agent": "（您在人工客服队列中排第 {position} 位；第一位空闲的客服会回复您。）",
        "queued_ack": "感谢您的耐心等待。人工客服会在这里回复您；在此期间如有其他问题，我也可以帮您。",
        "assigned": "客服 {agent} 已加入对话。",
        "closed_until": "负责该问题的团队目前不在工作时间，将于 {when}（{tz} 时间）上线。您的请求和完整对话已保存，届时会有人回复您。",
        "no_agent": "客服人员目前都在忙。您的请求和完整对话已保存，第一位空闲的客服会回复您。",
        "ask_email": "此聊天渠道无法在之后联系到您，请留下一个邮箱地址，方便我们回复您。",
        "email_saved": "谢谢！如果客服回复时您已离开，我们会发邮件到 {email}。",
        "offer_failure": "抱歉，这个问题我没能帮上忙。需要为您转接人工客服吗？",
        "offer_frustration": "很抱歉给您带来了不好的体验。需要为您转接人工客服吗？",
        "yes": "好的，转人工",
        "no": "不用了",
        "offer_declined": "好的，我们继续。您随时可以要求转人工客服。",
        "rule_escalated": "我已立即将此问题转交给人工客服。",
        "refund_escalated": "客服人员将审核订单 {order_id} 的 {amount} 退款。",
        "handed_back": "现在由智能助手继续为您服务。还有什么可以帮您？",
        "resolved": "{agent} 已结束本次对话。请为本次服务评分：1（很差）到 5（很好）。",
        "csat_comment": "谢谢！还有什么想补充的吗？可以写下您的意见，或选择“跳过”。",
        "csat_skip": "跳过",
        "csat_thanks": "感谢您的反馈。如果还需要帮助，随时告诉我。",
        "requeued": "抱歉让您久等了。正在为您寻找其他客服，您目前排在第 {position} 位。",
        "agent_nudge": "感谢您的耐心等待，{agent} 马上回复您。",
        "abandoned": "由于没有收到您的回复，转人工请求已关闭。需要时可随时再次提出。",
        "idle_closed": "由于长时间没有新消息，本次人工对话已关闭。需要时可随时再次转人工。",
        "transferred": "正在为您转接更合适的同事处理此问题。",
        "ticket_cap": "您的请求已经连同本次对话转交给我们的团队，今天不会再重复提交。他们会尽快回复您；在此期间我可以继续为您服务。",
    },
    "ru": {
        "queued": "Соединяю вас с сотрудником поддержки. Вы {position}-й в очереди, примерно {minutes} мин.",
        "queued_again": "Вы всё ещё в очереди к сотруднику: {position}-й, примерно {minutes} мин. Пока я могу помочь с другими вопросами.",
        "position": "(Вы {position}-й в очереди к сотруднику, примерно {minutes} мин.)",
        "position_closed": "(Вы {position}-й в очереди к сотруднику; сотрудники вернутся {when}, время {tz}.)",
        "position_no_agent": "(Вы {position}-й в очереди к сотруднику; ответит первый освободившийся сотрудник.)",
        "queued_ack": "Спасибо, что ждёте. Сотрудник ответит здесь; а пока я могу помочь с другими вопросами.",
        "assigned": "К чату подключился сотрудник: {agent}.",
        "closed_until": "Сотрудники по этому вопросу сейчас не работают; они вернутся {when} (время {tz}). Ваш запрос сохранён вместе со всей перепиской, и вам ответят.",
        "no_agent": "Все сотрудники сейчас заняты. Ваш запрос сохранён вместе со всей перепиской, и первый освободившийся сотрудник ответит.",
        "ask_email": "Этот чат не сможет связаться с вами позже, поэтому оставьте, пожалуйста, email для ответа.",
        "email_saved": "Спасибо! Если вас уже не будет в чате, мы ответим на {email}.",
        "offer_failure": "Извините, здесь я не смог помочь. Соединить вас с сотрудником?",
        "offer_frustration": "Извините за неудобства. Хотите поговорить с сотрудником поддержки?",
        "yes": "Да, соедините",
        "no": "Нет, спасибо",
        "offer_declined": "Хорошо, продолжим. Попросить сотрудника можно в любой момент.",
        "rule_escalated": "Я сразу передал ваш вопрос сотруднику поддержки.",
        "refund_escalated": "Сотрудник проверит возврат {amount} по заказу {order_id}.",
        "handed_back": "С вами снова помощник. Чем ещё могу помочь?",
        "resolved": "{agent} завершил(а) разговор. Оцените, пожалуйста, помощь от 1 (плохо) до 5 (отлично).",
        "csat_comment": "Спасибо! Хотите что-нибудь добавить? Напишите комментарий или нажмите «Пропустить».",
        "csat_skip": "Пропустить",
        "csat_thanks": "Спасибо за отзыв. Если понадобится помощь — просто напишите.",
        "requeued": "Извините за ожидание. Ищу другого сотрудника — вы {position}-й в очереди.",
        "agent_nudge": "Спасибо за терпение — {agent} скоро ответит.",
        "abandoned": "Мы не дождались ответа, поэтому запрос сотрудника закрыт. Можно попросить снова в любой момент.",
        "idle_closed": "Разговор с сотрудником закрыт из-за отсутствия активности. Попросить сотрудника можно снова в любой момент.",
        "transferred": "Передаю вас коллеге, который лучше поможет с этим вопросом.",
        "ticket_cap": "Ваш запрос уже передан нашей команде вместе с этой перепиской, поэтому сегодня я не буду создавать новый. Вам ответят; а пока я могу продолжать помогать здесь.",
    },
}

WEEKDAYS = {
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "zh": ["周一", "周二", "周三", "周四", "周五", "周六", "周日"],
    "ru": ["в понедельник", "во вторник", "в среду", "в четверг", "в пятницу", "в субботу", "в воскресенье"],
}


def text(key: str, language: str, **values: Any) -> str:
    table = TEXTS.get(language) or TEXTS["en"]
    template = table.get(key) or TEXTS["en"][key]
    return template.format(**values)


def standing(key: str, language: str, *, position: int, when: str | None = None, tz: str | None = None) -> str:
    """Where a waiting customer stands when nobody can answer yet, without a minutes estimate: the
    queue is closed (``when``/``tz``: when it opens) or nobody serving it is online. ``key`` is the
    notice it stands in for: ``position`` (the note after a bot turn), ``queued`` or ``queued_again``."""
    if when is not None:
        return text(
            "position_closed" if key == "position" else "closed_until", language, position=position, when=when, tz=tz
        )
    return text("position_no_agent" if key == "position" else "no_agent", language, position=position)


def when(moment: Any, language: str) -> str:
    """'Monday 09:00' / '周一 09:00' / 'в понедельник в 09:00' for an aware local datetime."""
    day = WEEKDAYS.get(language, WEEKDAYS["en"])[moment.weekday()]
    clock = moment.strftime("%H:%M")
    if language == "ru":
        return f"{day} в {clock}"
    if language == "zh":
        return f"{day} {clock}"
    return f"on {day} at {clock}"
