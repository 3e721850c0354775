"""Language detection and Chinese script conversion (conversations/language.py)."""

from __future__ import annotations

import pytest

from conversations.language import Detected, chinese_script, detect, to_mandarin, to_simplified, to_traditional


@pytest.mark.parametrize(
    ("text", "language", "script"),
    [
        ("where is my order?", "en", None),
        ("I want a refund for my jacket", "en", None),
        ("我的订单到哪了？", "zh", "hans"),
        ("我的訂單到哪了？", "zh", "hant"),
        ("订单号 3348917502", "zh", "hans"),
        ("我的email是 cminh730@email.com", "zh", "hans"),
        ("где мой заказ", "ru", None),
        ("хочу вернуть куртку, size не подошел", "ru", None),
    ],
)
def test_detects_language_and_script(text: str, language: str, script: str | None) -> None:
    assert detect(text) == Detected(language, script)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["ok", "3348917502", "cminh730@email.com", "?", "👍", "merci beaucoup pour tout"])
def test_ambiguous_text_keeps_the_conversation_language(text: str) -> None:
    for previous in (Detected("zh", "hans"), Detected("ru", None)):
        assert detect(text, previous) == previous


def test_new_conversation_defaults_to_english() -> None:
    assert detect("3348917502") == Detected("en", None)


def test_traditional_conversation_stays_traditional_on_shared_characters() -> None:
    # 好的 is written the same in both scripts: a Traditional writer stays Traditional.
    assert detect("好的", Detected("zh", "hant")) == Detected("zh", "hant")
    assert detect("好的", Detected("zh", "hans")) == Detected("zh", "hans")


def test_script_conversion_round_trip() -> None:
    assert to_simplified("我的訂單發貨了嗎") == "我的订单发货了吗"
    assert to_traditional("我的订单发货了吗") == "我的訂單發貨了嗎"
    assert chinese_script("發貨") == "hant"
    assert chinese_script("发货") == "hans"


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("where is 5120-648-393", "where is 5120648393"),
        ("512 064 8393 jwu477@email.com", "5120648393 jwu477@email.com"),
        ("订单号５１２０６４８３９３帮我查", "订单号5120648393帮我查"),
        ("訂單5120 648 393", "訂單5120648393"),
        ("номер 512-064-83-93.", "номер 5120648393."),
        ("5120‐648‐393", "5120648393"),  # Unicode hyphens
        # Not order numbers: other lengths, or digits glued to letters, stay as typed.
        ("call +7 912 345-67-89", "call +7 912 345-67-89"),
        ("on 2026-12-04 I paid 12.50", "on 2026-12-04 I paid 12.50"),
        ("jwu477 2026-12-04", "jwu477 2026-12-04"),
        ("3348917502", "3348917502"),
    ],
)
def test_order_numbers_typed_in_groups_or_full_width_are_read_as_one(typed: str, read: str) -> None:
    from conversations.language import normalise_ids

    assert normalise_ids(typed) == read


@pytest.mark.parametrize(("typed", "read"), [
    ("thanks. I'd like to speak with someone about my refund", "I'd like to speak with someone about my refund"),
    ("hey there, where's my parcel??", "where's my parcel??"),
    ("hi its 4021558730 where is it", "its 4021558730 where is it"),
    ("Здравствуйте! Хочу вернуть куртку", "Хочу вернуть куртку"),
    ("спасибо большое, а можно поменять адрес?", "а можно поменять адрес?"),
    ("您好，我想退货", "我想退货"),
    ("謝謝！還有，我要改地址", "還有，我要改地址"),
])
def test_a_greeting_or_thanks_in_front_of_a_request_is_not_what_the_bot_reads(typed: str, read: str) -> None:
    from conversations.language import strip_pleasantry

    assert strip_pleasantry(typed) == read


@pytest.mark.parametrize("typed", ["thanks!", "thank you so much", "hi", "привет", "谢谢", "ok cancel it", "history of orders",
                                   "hello?", "thanks a lot :)"])
def test_a_plain_greeting_or_thanks_stays_what_it_is(typed: str) -> None:
    from conversations.language import strip_pleasantry

    assert strip_pleasantry(typed) == typed


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("係 冇錯", "是 没错"),
        ("條褲拉鏈壞咗 我想退錢", "条裤拉链坏了 我想退钱"),
        ("有冇人喺度", "有没有人在"),
        ("唔好意思打錯 應該係九龍", "不好意思打错 应该是九龙"),
        ("係咪可以退", "是不是可以退"),
        # Mandarin words with 系 or 关系 are left alone
        ("系統出錯 跟我們的關係", "系统出错 跟我们的关系"),
        ("where is my order", "where is my order"),
    ],
)
def test_written_cantonese_is_read_in_mandarin_words(typed: str, read: str) -> None:
    assert to_mandarin(typed) == read


def test_traditional_replies_use_the_forms_taiwan_and_hong_kong_type() -> None:
    assert to_traditional("请核对：为订单退款") == "請核對：為訂單退款"
