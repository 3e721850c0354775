"""Self-check of the custom NLU components, run in the Rasa environment:

    RASA_TELEMETRY_ENABLED=false PYTHONPATH=. .venv-rasa/bin/python -m bot.components.selfcheck

Trains a tiny model (inline en/zh/ru data) with our tokenizer, e5 featurizer, regex entity
extractor and classifier, loads it back with Rasa's Agent (so persistence is exercised) and
checks tokenizer offsets, whole emails / order ids, the intent ranking and nlu_fallback for a
far-off message. Prints one JSON object {"checks": {name: {"ok": bool, "detail": ...}}} on the
last line of stdout; exit status 0 when every check passed. tests/test_nlu_components.py runs it
from the application's Python 3.11 environment (which has no Rasa).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict

os.environ["RASA_TELEMETRY_ENABLED"] = "false"
os.environ.setdefault("RASA_MAX_CACHE_SIZE", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

NLU = """version: "3.1"
nlu:
- intent: greet
  examples: |
    - hello
    - hi there
    - good morning
    - 你好
    - 您好，在吗
    - здравствуйте
    - привет
- intent: check_order_status
  examples: |
    - where is my order
    - what is the status of order [3348917502](order_id)
    - has my order [1029384756](order_id) shipped yet
    - 我的订单[5566778899](order_id)到哪了
    - 請問我的訂單狀態
    - где мой заказ
    - статус заказа [7766554433](order_id)
- intent: request_refund
  examples: |
    - i want a refund
    - give me my money back
    - please refund my purchase
    - i want a refund, [the zip broke](reason)
    - [it arrived torn](reason), refund me please
    - 我要退款
    - 可以退钱吗
    - [鞋子开胶了](reason)，我要退款
    - хочу вернуть деньги
    - оформите возврат средств
    - верните деньги, [куртка пришла с дыркой](reason)
- intent: inform
  examples: |
    - [the sleeve is ripped](reason)
    - [it's the wrong colour](reason)
    - [衣服太小了](reason)
    - [молния сломалась](reason)
    - my username is [asanders308](username)
    - 用户名[dwilliams615](username)
    - логин [jbanter553](username)
- intent: reset_password
  examples: |
    - i forgot my password
    - reset my password please
    - i can't log in, my email is [anna.k@mail.com](email)
    - 忘记密码了
    - 重置密碼
    - не могу войти, забыл пароль
    - сбросьте пароль для [ivan.p@mail.ru](email)
- regex: order_id
  examples: |
    - (?<![0-9])[0-9]{10}(?![0-9])
- regex: email
  examples: |
    - (?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}
"""
# the shipped username pattern, read from nlu_data/shared.yml so that this check tests it
SHARED = Path(__file__).resolve().parents[2] / "nlu_data" / "shared.yml"

CONFIG = """recipe: default.v1
language: en
assistant_id: selfcheck
pipeline:
  - name: bot.components.tokenizer.MultilingualTokenizer
  - name: bot.components.e5_featurizer.E5Featurizer
  - name: RegexFeaturizer
  - name: RegexEntityExtractor
    use_regexes: true
  - name: CRFEntityExtractor
    max_iterations: 20
  - name: bot.components.intent_classifier.E5IntentClassifier
    no_fallback_intents: [out_of_scope]
  - name: bot.components.reason_extractor.ReasonExtractor
    min_examples: 3
  - name: bot.components.entity_filter.EntityDeduplicator
    authoritative:
      order_id: RegexEntityExtractor
      email: RegexEntityExtractor
      username: RegexEntityExtractor
      reason: ReasonExtractor
policies: []
"""

MIXED = "订单1234567890还没到 please email cminh730@email.com, Где мой заказ? 訂單什麼時候到"


def check_tokenizer() -> Dict[str, Any]:
    from rasa.shared.nlu.training_data.message import Message

    from bot.components.tokenizer import MultilingualTokenizer

    tok = MultilingualTokenizer(MultilingualTokenizer.get_default_config())
    tokens = tok.tokenize(Message(data={"text": MIXED}), "text")
    spans = [(t.text, t.start, t.end) for t in tokens]
    bad = [s for s in spans if MIXED[s[1] : s[2]] != s[0]]
    words = [s[0] for s in spans]
    expected = [
        "订单",
        "1234567890",
        "还",
        "please",
        "email",
        "cminh730@email.com",
        "Где",
        "мой",
        "заказ",
        "訂單",
        "什麼",
        "時候",
    ]
    missing = [w for w in expected if w not in words]
    ok = not bad and not missing
    return {"ok": ok, "detail": {"tokens": spans, "bad_offsets": bad, "missing": missing}}


def check_whole_entities_tokens() -> Dict[str, Any]:
    from rasa.shared.nlu.training_data.message import Message

    from bot.components.tokenizer import MultilingualTokenizer

    tok = MultilingualTokenizer(MultilingualTokenizer.get_default_config())
    text = "我的邮箱是li.wei+shop@example.com.cn，订单号3348917502。Order 12345678901 isn't one."
    words = [t.text for t in tok.tokenize(Message(data={"text": text}), "text")]
    ok = (
        "li.wei+shop@example.com.cn" in words
        and "3348917502" in words
        and "12345678901" in words
        and "1234567890" not in words
    )
    return {"ok": ok, "detail": words}


def train_and_load(tmp: Path) -> Any:
    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu

    (tmp / "nlu.yml").write_text(NLU + shipped_username_regex(), encoding="utf-8")
    (tmp / "config.yml").write_text(CONFIG, encoding="utf-8")
    model = train_nlu(str(tmp / "config.yml"), str(tmp / "nlu.yml"), str(tmp / "models"), fixed_model_name="selfcheck")
    if not model:
        raise RuntimeError("training failed")
    # drop the process-wide embedding cache and the loaded e5 / jieba models: the loaded model
    # must work on its own, and loading it must load both models again (before any message)
    import bot.components.tokenizer as tokenizer_module
    from bot.components.e5_featurizer import E5_CACHE

    E5_CACHE._cache.clear()
    E5_CACHE._model = None
    tokenizer_module._jieba = None
    agent = Agent.load(model)
    LOADED_AT_LOAD.update({"e5": E5_CACHE._model is not None, "jieba": tokenizer_module._jieba is not None})
    return agent


LOADED_AT_LOAD: Dict[str, bool] = {}


def shipped_username_regex() -> str:
    """The `- regex: username` block of nlu_data/shared.yml."""
    match = re.search(r"^- regex: username\n(?:  .*\n)+", SHARED.read_text(encoding="utf-8"), re.M)
    if not match:
        raise RuntimeError(f"no username regex in {SHARED}")
    return match.group(0)


def check_embedding_cache_bounded() -> Dict[str, Any]:
    """The shared cache has a bounded default size and evicts the least recently used text."""
    from bot.components.e5_featurizer import DEFAULT_CACHE_SIZE, E5_CACHE, _E5Cache

    cache = _E5Cache()
    cache._model = E5_CACHE.model()
    default = cache.max_size
    cache.max_size = 3
    cache.embed(["one", "two", "three"], "query")
    cache.embed(["one"], "query")  # "one" is now the most recently used
    cache.embed(["four", "five"], "query")
    kept = sorted(text for _, text in cache._cache)
    ok = default == DEFAULT_CACHE_SIZE <= 50_000 and kept == ["five", "four", "one"]
    return {"ok": ok, "detail": {"default_max_size": default, "kept": kept}}


def check_no_fallback_intents() -> Dict[str, Any]:
    """An intent listed in no_fallback_intents is answered as itself even when far from every
    training example; any other intent falls back (crafted probabilities, real component)."""
    import numpy as np
    from rasa.shared.nlu.training_data.message import Message

    from bot.components.intent_classifier import E5IntentClassifier

    config = {**E5IntentClassifier.get_default_config(), "no_fallback_intents": ["out_of_scope"]}
    clf = E5IntentClassifier(config, None, None, labels=["greet", "out_of_scope"])  # type: ignore[arg-type]
    results = {}
    for name, probs in {"out_of_scope": [0.1, 0.9], "greet": [0.9, 0.1]}.items():
        message = Message(data={"text": "x"})
        clf._set_prediction(message, np.array(probs), gate=max(probs), similarity=0.5)
        results[name] = message.get("intent")["name"]
    ok = results == {"out_of_scope": "out_of_scope", "greet": "nlu_fallback"}
    return {"ok": ok, "detail": results}


def check_mlp_blend() -> Dict[str, Any]:
    """The stored MLP weights reproduce scikit-learn's own probabilities (numpy forward pass, also
    for two intents, where scikit-learn fits a single logistic output), and a low logistic-
    regression probability sends the message to nlu_fallback however sure the MLPs are."""
    import numpy as np
    from rasa.shared.nlu.training_data.message import Message
    from sklearn.neural_network import MLPClassifier

    from bot.components.intent_classifier import E5IntentClassifier

    rng = np.random.default_rng(0)
    config = {**E5IntentClassifier.get_default_config(), "mlp_ensemble": 2, "mlp_hidden": 16, "mlp_max_iter": 200}
    detail: Dict[str, Any] = {}
    ok = True
    for n_classes in (2, 4):
        X = rng.normal(size=(40, 8)).astype(np.float32)
        y = np.arange(40) % n_classes
        X[np.arange(40), y] += 3.0
        clf = E5IntentClassifier(config, None, None, labels=[f"i{k}" for k in range(n_classes)])  # type: ignore[arg-type]
        layers = clf._fit_mlps(X, y)
        clf.model = {f"mlp_{k}_{name}": a for k, layer in enumerate(layers) for name, a in layer.items()}
        ours = clf._mlp_log_probs(X)
        theirs = []
        for seed in range(2):
            ref = MLPClassifier(hidden_layer_sizes=(16,), alpha=1e-3, max_iter=200, random_state=seed)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref.fit(X, y)
            theirs.append(ref.predict_log_proba(X))
        gap = float(np.abs(ours - np.mean(theirs, axis=0)).max())  # type: ignore[operator]
        detail[f"{n_classes}_intents_max_log_prob_gap"] = gap
        ok = ok and gap < 1e-3
    message = Message(data={"text": "x"})
    clf._set_prediction(message, np.array([0.1, 0.1, 0.1, 0.7]), gate=0.2, similarity=0.99)
    detail["low_regression_confidence"] = message.get("intent")["name"]
    ok = ok and detail["low_regression_confidence"] == "nlu_fallback"
    return {"ok": ok, "detail": detail}


def check_entity_intent_gate() -> Dict[str, Any]:
    """EntityDeduplicator keeps a gated entity type only for its intents; for nlu_fallback the
    best real intent of the ranking decides."""
    from rasa.shared.nlu.training_data.message import Message

    from bot.components.entity_filter import EntityDeduplicator, best_intent

    dedup = EntityDeduplicator(
        {**EntityDeduplicator.get_default_config(), "intents": {"refund_method": ["request_refund", "inform"]}}
    )
    card = {
        "entity": "refund_method",
        "start": 17,
        "end": 27,
        "value": "debit card",
        "extractor": "RegexEntityExtractor",
    }
    order = {"entity": "order_id", "start": 0, "end": 10, "value": "3348917502", "extractor": "RegexEntityExtractor"}
    fallback = Message(
        data={
            "text": "x",
            "intent": {"name": "nlu_fallback", "confidence": 0.3},
            "intent_ranking": [{"name": "nlu_fallback"}, {"name": "request_refund"}, {"name": "greet"}],
        }
    )
    got = {
        "ask_question": [e["entity"] for e in dedup.filter([card, order], "ask_question")],
        "request_refund": [e["entity"] for e in dedup.filter([card, order], "request_refund")],
        "no intent": [e["entity"] for e in dedup.filter([card, order], None)],
        "best_intent(nlu_fallback)": best_intent(fallback),
    }
    want = {
        "ask_question": ["order_id"],
        "request_refund": ["refund_method", "order_id"],
        "no intent": ["refund_method", "order_id"],
        "best_intent(nlu_fallback)": "request_refund",
    }
    return {"ok": got == want, "detail": got}


def check_clause_split() -> Dict[str, Any]:
    """Clause offsets index the original text; emails, order ids and numbers are not split."""
    from bot.components.reason_extractor import split_clauses

    cases = {
        "i want to return order 3348917502, it's too small": ["i want to return order 3348917502", "it's too small"],
        "refund please because the zip broke": ["refund please", "the zip broke"],
        "邮箱cminh730@email.com，原因是衣服起球了": ["邮箱cminh730@email.com", "衣服起球了"],
        "верните деньги, куртка стоила 1,500.50 — причина: шов разошелся": [
            "верните деньги",
            "куртка стоила 1,500.50",
            "причина",
            "шов разошелся",
        ],
    }
    got = {text: [text[a:b] for a, b in split_clauses(text)] for text in cases}
    return {"ok": got == cases, "detail": got}


def main() -> int:
    checks: Dict[str, Dict[str, Any]] = {}

    def run(name: str, fn: Callable[[], Dict[str, Any]]) -> None:
        try:
            checks[name] = fn()
        except Exception:  # report, don't stop
            checks[name] = {"ok": False, "detail": traceback.format_exc()}

    run("tokenizer_offsets_mixed_zh_en_ru", check_tokenizer)
    run("tokenizer_keeps_emails_and_order_ids", check_whole_entities_tokens)
    run("embedding_cache_bounded_lru", check_embedding_cache_bounded)
    run("no_fallback_intents_answered_as_themselves", check_no_fallback_intents)
    run("mlp_blend_matches_sklearn_and_gates_on_regression", check_mlp_blend)
    run("reason_clause_split", check_clause_split)
    run("entity_intent_gate", check_entity_intent_gate)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.chdir(tmp)  # rasa writes its cache / tmp files relative to the cwd
        try:
            agent = train_and_load(tmp)
        except Exception:
            checks["train_and_load"] = {"ok": False, "detail": traceback.format_exc()}
            agent = None
        else:
            checks["train_and_load"] = {"ok": True, "detail": f"{time.perf_counter() - t0:.1f}s"}
        if agent is not None:
            loop = asyncio.new_event_loop()

            def parse(text: str) -> Dict[str, Any]:
                return loop.run_until_complete(agent.parse_message(text))

            def ranking() -> Dict[str, Any]:
                results = {t: parse(t) for t in ["where is my order", "我要退款", "забыл пароль, помогите"]}
                want = {
                    "where is my order": "check_order_status",
                    "我要退款": "request_refund",
                    "забыл пароль, помогите": "reset_password",
                }
                ok = True
                detail: Dict[str, Any] = {}
                for text, r in results.items():
                    rk = r["intent_ranking"]
                    confs = [x["confidence"] for x in rk]
                    ok &= r["intent"]["name"] == want[text]
                    ok &= rk[0]["name"] == want[text] and len(rk) == 5
                    ok &= confs == sorted(confs, reverse=True) and abs(sum(confs) - 1) < 1e-3
                    ok &= 0.0 <= r["intent"]["similarity"] <= 1.0 + 1e-6
                    detail[text] = {"intent": r["intent"], "ranking": [x["name"] for x in rk]}
                return {"ok": bool(ok), "detail": detail}

            def fallback() -> Dict[str, Any]:
                r = parse("the mitochondria is the powerhouse of the cell, explain photosynthesis")
                rk = r["intent_ranking"]
                ok = (
                    r["intent"]["name"] == "nlu_fallback"
                    and rk[0]["name"] == "nlu_fallback"
                    and len(rk) == 6
                    and rk[1]["name"] != "nlu_fallback"
                    and "similarity" in r["intent"]
                )
                return {"ok": bool(ok), "detail": {"intent": r["intent"], "ranking": [x["name"] for x in rk]}}

            def entities() -> Dict[str, Any]:
                r = parse("my order 3348917502 never came, email me at cminh730@email.com")
                found = [(e["entity"], e["value"], e.get("extractor")) for e in r["entities"]]
                ents = [(e, v) for e, v, _ in found]
                ok = ents.count(("order_id", "3348917502")) == 1 and ents.count(("email", "cminh730@email.com")) == 1
                return {"ok": bool(ok), "detail": found}

            def usernames() -> Dict[str, Any]:
                want = {
                    "my username is jwu477": [("username", "jwu477")],
                    "我的账号hchen509密码忘了": [("username", "hchen509")],
                    "логин czhang880, заказ 3348917502": [("username", "czhang880"), ("order_id", "3348917502")],
                    "email me at cminh730@email.com": [("email", "cminh730@email.com")],
                }
                got = {}
                for text in want:
                    got[text] = sorted((e["entity"], e["value"]) for e in parse(text)["entities"])
                ok = all(got[t] == sorted(w) for t, w in want.items())
                return {"ok": ok, "detail": got}

            def reasons() -> Dict[str, Any]:
                texts = {
                    "i need a refund, the strap snapped": "the strap snapped",
                    "where is my order 3348917502": None,
                }
                got = {}
                for text in texts:
                    r = parse(text)
                    found = [(e["value"], e.get("extractor")) for e in r["entities"] if e["entity"] == "reason"]
                    got[text] = {"intent": r["intent"]["name"], "reasons": found}
                ok = [v for v, _ in got["i need a refund, the strap snapped"]["reasons"]] == ["the strap snapped"]
                ok &= not got["where is my order 3348917502"]["reasons"]
                return {"ok": bool(ok), "detail": got}

            run(
                "models_loaded_when_the_model_loads",
                lambda: {"ok": all(LOADED_AT_LOAD.values()) and len(LOADED_AT_LOAD) == 2, "detail": LOADED_AT_LOAD},
            )
            run("classifier_ranking", ranking)
            run("nlu_fallback_far_off_message", fallback)
            run("entities_whole_and_not_duplicated", entities)
            run("username_regex_whole_and_once", usernames)
            run("reason_clause_extracted", reasons)
            loop.close()
    print(
        json.dumps({"checks": checks, "seconds": round(time.perf_counter() - t0, 1)}, ensure_ascii=False, default=str)
    )
    return 0 if all(c["ok"] for c in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
