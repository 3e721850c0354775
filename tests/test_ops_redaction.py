"""PII redaction (ops/redaction.py, ops/names*.py): each type in each language, person names in
English, Simplified and Traditional Chinese and Russian (and the brands, places and words that are
not names), the stand-ins, span mapping, and the recall targets on the labelled sets of
bench/redaction."""

from __future__ import annotations

import re

import pytest

from bench.redaction.__main__ import LABELLED_LANGUAGES, LANGUAGES, TARGETS, _person_met, evaluate, load
from ops.redaction import Redactor, Span, luhn_ok


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("write to anna.k@proton.me please", "en", [("email", "anna.k@proton.me")]),
        ("我的邮箱是wangxm@163.com谢谢", "zh", [("email", "wangxm@163.com")]),
        ("call me at (555) 123-4567", "en", [("phone", "(555) 123-4567")]),
        ("电话13812345678", "zh", [("phone", "13812345678")]),
        ("телефон +7 (912) 345-67-89", "ru", [("phone", "+7 (912) 345-67-89")]),
        ("card 4111 1111 1111 1111 was charged", "en", [("card", "4111 1111 1111 1111")]),
        ("where is 3348917502", "en", [("order_id", "3348917502")]),
        ("订单号3348917502", "zh", [("order_id", "3348917502")]),
        ("please call 2079460958", "en", [("phone", "2079460958")]),  # 10 digits after a phone cue
        ("ship to 42 Elm Street, Springfield, IL 62704 thanks", "en", [("address", "42 Elm Street, Springfield, IL 62704")]),
        ("寄到北京市朝阳区建国路88号", "zh", [("address", "北京市朝阳区建国路88号")]),
        ("адрес: г. Москва, ул. Ленина, д. 5, кв. 12", "ru", [("address", "г. Москва, ул. Ленина, д. 5, кв. 12")]),
        ("My name is Sarah Connor", "en", [("person", "Sarah Connor")]),
        ("我叫王小明", "zh", [("person", "王小明")]),
        ("меня зовут Иван Петров", "ru", [("person", "Иван Петров")]),
    ],
)
def test_each_type_in_each_language(redactor: Redactor, text: str, language: str, expected: list[tuple[str, str]]) -> None:
    assert [(s.type, s.text) for s in redactor.find(text, language)] == expected


@pytest.mark.parametrize(
    "text",
    [
        "the total was 149.99 and I was charged 159.99",
        "I ordered on 2026-11-02",
        "my order number 3348917 doesn't work",  # 7 digits: not an order id
        "card 4111 1111 1111 1112",  # fails the Luhn check
        "my username is jwu477",
        "快递单号SF1234567890123",
        "мой индекс 101000",
    ],
)
def test_no_false_positives(redactor: Redactor, text: str) -> None:
    assert redactor.find(text) == []


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("378282246310005")
    assert not luhn_ok("4111111111111112")


def test_mask_and_surrogate(redactor: Redactor) -> None:
    text = "order 3348917502, email cminh730@email.com, phone 138 1234 5678"
    assert redactor.redact_text(text, "en") == "order [ORDER_ID], email [EMAIL], phone [PHONE]"
    sur = redactor.redact(text, "en", "surrogate")
    assert "3348917502" not in sur.text and "cminh730" not in sur.text and "1234 5678" not in sur.text
    # Same shape: an order id is still ten digits, the phone keeps its grouping and first digit.
    assert re.search(r"order \d{10},", sur.text)
    assert re.search(r"@example\.com", sur.text)
    assert re.search(r"phone 1\d\d \d{4} \d{4}$", sur.text)
    # Deterministic: the same input gives the same stand-ins (stable training-data diffs).
    assert redactor.redact(text, "en", "surrogate").text == sur.text


def test_map_span_follows_the_replacements(redactor: Redactor) -> None:
    text = "hi I am Emily Chen, order 3348917502 please"
    red = redactor.redact(text, "en", "surrogate")
    start = text.index("3348917502")
    s, e = red.map_span(start, start + 10)
    assert re.fullmatch(r"\d{10}", red.text[s:e])
    please = text.index("please")
    s, e = red.map_span(please, please + 6)
    assert red.text[s:e] == "please"


@pytest.mark.parametrize("part", ["labelled", "heldout"])
def test_recall_targets_on_the_labelled_sets(redactor: Redactor, part: str) -> None:
    """Issue 6: recall ≥ 95% for emails, phones and card numbers (bench/RESULTS.md has the full table)."""
    languages = LABELLED_LANGUAGES if part == "labelled" else LANGUAGES
    examples = [ex for lang in languages for ex in load(lang, part)]
    if part == "labelled":
        for lang in languages:
            assert len(load(lang, part)) >= 100
    result = evaluate(examples, redactor)
    for kind, target in TARGETS.items():
        assert result[kind]["recall"] >= target, (kind, result[kind])


def _people(redactor: Redactor, text: str, language: str) -> list[str]:
    return [s.text for s in redactor.find(text, language) if s.type == "person"]


@pytest.mark.parametrize(
    ("text", "language", "names"),
    [
        # Simplified Chinese: full names with and without cues, titles, familiar forms, surname only
        ("收件人写的是李娜，能改成张伟吗", "zh", ["李娜", "张伟"]),
        ("我老公刘建国帮我下的单", "zh", ["刘建国"]),
        ("王秀英帮我签收了", "zh", ["王秀英"]),
        ("麻烦让快递员联系一下黄女士", "zh", ["黄女士"]),
        ("小王说他没收到货", "zh", ["小王"]),
        ("你们客服小陈说会退款的", "zh", ["小陈"]),
        ("我姓孙，手机号13912345678", "zh", ["孙"]),
        ("欧阳娜娜下的单", "zh", ["欧阳娜娜"]),
        ("我儿子浩浩用我手机下的单", "zh", ["浩浩"]),
        ("我叫Lucy，订单还没到", "zh", ["Lucy"]),
        # Traditional Chinese (Taiwan, Hong Kong)
        ("收件人寫的是陳怡君，可以改成林雅婷嗎", "zh-Hant", ["陳怡君", "林雅婷"]),
        ("我老公張家豪幫我下的單", "zh-Hant", ["張家豪"]),
        ("請轉交楊先生", "zh-Hant", ["楊先生"]),
        ("黃太叫我問下幾時送到", "zh-Hant", ["黃太"]),
        ("王大明跟王小明住一起", "zh-Hant", ["王大明", "王小明"]),
        # Russian: cases, lower case, patronymics, initials, diminutives
        ("передайте посылку Анне Сергеевне, она на ресепшене", "ru", ["Анне Сергеевне"]),
        ("меня зовут ольга смирнова, где заказ", "ru", ["ольга смирнова"]),
        ("получатель Кузнецов И. П., телефон 89161112233", "ru", ["Кузнецов И. П."]),
        ("доставьте Ковалёвой Марии", "ru", ["Ковалёвой Марии"]),
        ("Спасибо, Саша, всё пришло", "ru", ["Саша"]),
        ("привет, это серёжа, опять по поводу возврата", "ru", ["серёжа"]),
        ("а Фёдоров уже забрал?", "ru", ["Фёдоров"]),
        # English beyond spaCy: lower case after a cue, titles, names no list knows after a relation
        ("hey this is jake, my order is late", "en", ["jake"]),
        ("please address it to Dr. Nguyen", "en", ["Dr. Nguyen"]),
        ("my flatmate Olu accidentally opened my parcel", "en", ["Olu"]),
        # round 2: given names with no surname told by what follows, transliterations, parcels, initials
        ("思琪帮我看一下优惠券", "zh", ["思琪"]),
        ("杰西卡说她没收到", "zh", ["杰西卡"]),
        ("寄到公司 周婷收", "zh", ["周婷"]),
        ("麗華跟我說已經寄了", "zh-Hant", ["麗華"]),
        ("Rose said the refund was approved", "en", ["Rose"]),
        ("signed for by K. Whitfield", "en", ["K. Whitfield"]),
        ("i spoke to Fatima yesterday", "en", ["Fatima"]),
        ("Роман из поддержки обещал перезвонить", "ru", ["Роман"]),
        # round 3 (English): ordinary-word names with a cue on both sides, names no list knows with a context,
        # names joined by and/or/to/commas, surnames and particles after a first name, signatures, possessives
        ("tell will to call me back", "en", ["will"]),
        ("hi, grace here, quick question about sizes", "en", ["grace"]),
        ("gift for daisy arrived broken", "en", ["daisy"]),
        ("June told me to wait", "en", ["June"]),
        ("ask for tunde at the counter", "en", ["tunde"]),
        ("call my brother olumide on 07700900111", "en", ["olumide"]),
        ("Chiamaka said the parcel was left outside", "en", ["Chiamaka"]),
        ("the box was addressed to Oghenekaro", "en", ["Oghenekaro"]),
        ("why did Obinna cancel my order", "en", ["Obinna"]),
        ("Kemi's order is under my account", "en", ["Kemi"]),
        ("where is my order?? - Dami", "en", ["Dami"]),
        ("i need to change it from Olamide to Ola", "en", ["Olamide", "Ola"]),
        ("Xavier, Imani and Luis share one account", "en", ["Xavier", "Imani", "Luis"]),
        ("my husband Venkatesh Iyer ordered it", "en", ["Venkatesh Iyer"]),
        ("spoke with Nguyen Thi Huong on the phone", "en", ["Nguyen Thi Huong"]),
        ("hi my name is Siobhán Ní Bhriain", "en", ["Siobhán Ní Bhriain"]),
        ("it was delivered to a Mr T. Okoro", "en", ["Mr T. Okoro"]),
        ("Penny and Sunny share the account", "en", ["Penny", "Sunny"]),
        ("Florence from billing rang me", "en", ["Florence"]),
        ("sorry Bill, my mistake", "en", ["Bill"]),
    ],
)
def test_person_names(redactor: Redactor, text: str, language: str, names: list[str]) -> None:
    assert _people(redactor, text, language) == names


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("我在李宁专卖店买的鞋子开胶了", "zh"),  # brand
        ("小米手机什么时候有货", "zh"),
        ("华为的充电器能用吗", "zh"),
        ("北京发货到张家口要几天", "zh"),  # places
        ("石家庄的仓库发货慢", "zh"),
        ("很高兴你们这么快回复", "zh"),  # words that start with a surname
        ("周末能送到吗", "zh"),
        ("黄色那款还有吗", "zh"),
        ("马上给我退款", "zh"),
        ("金额不对，多扣了钱", "zh"),
        ("我明明已经付款了", "zh"),
        ("订单小计在使用优惠码之后超过 $75", "zh"),
        ("台中到高雄要多久", "zh-Hant"),
        ("我在李寧專賣店買的鞋子開膠了", "zh-Hant"),
        ("週末可以送到嗎", "zh-Hant"),
        ("доставка до ул. Ленина нормально?", "ru"),  # streets, cities, brands, sentence-initial capitals
        ("живу на улице Гагарина, курьер не нашёл", "ru"),
        ("Добрый день, подскажите по возврату", "ru"),
        ("оплатил картой Мир, деньги списались дважды", "ru"),
        ("Ассистент работает круглосуточно и без выходных.", "ru"),
        ("Вера в ваш магазин пропала", "ru"),
        ("I will be away in June, can you hold it?", "en"),
        ("May I change the colour of my order?", "en"),
        ("shipped from our warehouse in Columbus, Ohio", "en"),
        ("the parcel ID is JD014600006281234567", "en"),
        ("杨梅和荔枝哪个新鲜", "zh"),  # round 2: words and brands around the new right-hand cues
        ("佳能和尼康的相机", "zh"),
        ("明明说好今天到的", "zh"),
        ("高兴说不出话", "zh"),
        ("Mark as received please", "en"),
        ("is the Calvin Klein belt real leather", "en"),
        ("the Nike hoodie is too small", "en"),
        ("сумка Гуччи пришла без пыльника", "ru"),
        ("the Grace period ends friday", "en"),  # round 3: words, products and places around the new cues
        ("ok, will do", "en"),
        ("hi, will it arrive today", "en"),
        ("I will mark it as received", "en"),
        ("bill me later please", "en"),
        ("rose gold or silver?", "en"),
        ("Fingers crossed", "en"),
        ("the Xiaomi phone stopped charging", "en"),
        ("Mr Kipling cakes were squashed", "en"),
        ("Peter Pan collar blouse in size 10", "en"),
        ("Paris, France", "en"),
        ("delivered to Birmingham instead of Bristol", "en"),
        ("Victoria station collection point", "en"),
        ("Tommy Hilfiger shirt faded after one wash", "en"),
        ("ship to Austin, TX", "en"),
        ("thank you for your patience", "en"),
        ("Flat 3, 27 Queen's Road, Bristol", "en"),
    ],
)
def test_not_names(redactor: Redactor, text: str, language: str) -> None:
    assert _people(redactor, text, language) == []


def test_person_target_counts_the_languages_a_set_has() -> None:
    """names_heldout3/ is English only: a missing language is no failure, a low one is."""
    assert _person_met({"en": {"person": {"recall": 0.95}}})
    assert not _person_met({"en": {"person": {"recall": 0.95}}, "zh": {"person": {"recall": 0.85}}})


def test_names_are_masked_and_surrogated_in_their_script(redactor: Redactor) -> None:
    assert redactor.redact_text("收件人写的是李娜，能改成张伟吗", "zh") == "收件人写的是[PERSON]，能改成[PERSON]吗"
    assert redactor.redact_text("заказ оформлял мой муж Дмитрий", "ru") == "заказ оформлял мой муж [PERSON]"
    assert redactor.redact_text("請轉交陳怡君", "zh-Hant", "surrogate") == "請轉交張三"
    assert redactor.redact_text("请转交陈怡君", "zh", "surrogate") == "请转交张三"


def test_find_is_cached_and_returns_a_fresh_list(redactor: Redactor) -> None:
    text = "我老公刘建国帮我下的单"
    first = redactor.find(text, "zh")
    first.append(Span(0, 1, "person", "我"))
    assert redactor.find(text, "zh") == [Span(3, 6, "person", "刘建国")]


def test_names_off_keeps_only_the_cue_phrases(redactor: Redactor) -> None:
    plain = Redactor(names=False)
    assert [s.text for s in plain.find("меня зовут Иван Петров")] == ["Иван Петров"]
    assert [s.text for s in plain.find("我叫王小明")] == ["王小明"]
    assert plain.find("王秀英帮我签收了") == []  # no cue: only the name models find it
    assert _people(redactor, "王秀英帮我签收了", "zh") == ["王秀英"]


@pytest.mark.parametrize("language", LABELLED_LANGUAGES)
def test_person_recall_on_the_labelled_sets(redactor: Redactor, language: str) -> None:
    """Issue 17: person-name recall ≥ 90% per language (the blind held-out figures are in bench/RESULTS.md)."""
    result = evaluate(load(language), redactor)
    assert result["person"]["recall"] >= 0.9, result["person"]
    assert result["person"]["precision"] >= 0.9, result["person"]
