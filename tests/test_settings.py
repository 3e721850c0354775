"""Settings in sections (issue 15): every earlier flat name still works (environment, keyword,
attribute, TOML), the nested ``SECTION__FIELD`` names work and win, and the modules' config
dataclasses take their defaults from the sections instead of repeating them."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from settings import LEGACY_NAMES, SECTIONS, Settings

# The field names of the flat Settings before the sections (commit 0182cc0): each must stay settable.
BEFORE = [
    "action_server_token",
    "admin_api_token",
    "agent_cookie_secure",
    "auto_refund_limit",
    "channel_api_timeout_s",
    "channel_inbound_retry_s",
    "channel_max_text_chars",
    "channel_rate_limit_count",
    "channel_rate_limit_window_s",
    "console_allowed_origins",
    "data_dir",
    "database_url",
    "demo",
    "forwarded_allow_ips",
    "handoff_admin_password",
    "handoff_admin_username",
    "handoff_agent_nudge_min",
    "handoff_agent_requeue_min",
    "handoff_auto_assign",
    "handoff_config",
    "handoff_demo_agent_password",
    "handoff_email_from",
    "handoff_email_to",
    "handoff_failure_turns",
    "handoff_frustration_threshold",
    "handoff_idle_close_min",
    "handoff_offer_cooldown_turns",
    "handoff_outbox_backoff_s",
    "handoff_presence_timeout_s",
    "handoff_queued_abandon_min",
    "handoff_secret",
    "handoff_session_hours",
    "handoff_smtp_host",
    "handoff_smtp_password",
    "handoff_smtp_port",
    "handoff_smtp_tls",
    "handoff_smtp_username",
    "handoff_sweep_interval_s",
    "handoff_webhook_secret",
    "handoff_webhook_url",
    "host",
    "kb_ann_threshold",
    "kb_answer_threshold",
    "kb_chunk_max_chars",
    "kb_chunk_overlap_chars",
    "kb_clarify_floor",
    "kb_clarify_margin",
    "kb_embedder",
    "kb_ivf_encoding",
    "kb_ivf_nlist",
    "kb_ivf_nprobe",
    "kb_keep_versions",
    "kb_lexical_min_coverage",
    "kb_lexical_weight",
    "kb_source_dir",
    "log_level",
    "login_max_concurrent_hashes",
    "max_body_bytes",
    "max_upload_bytes",
    "max_verification_attempts",
    "model_dir",
    "ops_cluster_attach",
    "ops_cluster_distance",
    "ops_collect_every_s",
    "ops_collect_max_delay_s",
    "ops_collect_quiet_s",
    "ops_durable_days",
    "ops_gate_accuracy_margin",
    "ops_gate_floor_f1",
    "ops_gate_strong_f1",
    "ops_low_confidence",
    "ops_nlu_data_dir",
    "ops_nlu_test_dir",
    "ops_pin_promoted_model",
    "ops_rephrase_similarity",
    "ops_rephrase_window_turns",
    "ops_session_gap_min",
    "ops_test_stories",
    "ops_train_timeout_s",
    "outbox_poll_s",
    "outbox_retry_base_s",
    "outbox_retry_max_s",
    "port",
    "rasa_channel_token",
    "rasa_config",
    "rasa_max_attempts",
    "rasa_port",
    "rasa_restart_backoff_s",
    "rasa_timeout_s",
    "rasa_token",
    "rasa_url",
    "rasa_venv",
    "rate_limit_global",
    "rate_limit_login_per_account",
    "rate_limit_login_per_ip",
    "rate_limit_per_ip",
    "rate_limit_storage",
    "rate_limit_webhook",
    "rest_api_keys",
    "retry_after_s",
    "secret_key",
    "telegram_api_base",
    "telegram_bot_token",
    "telegram_webhook_secret",
    "tickets_per_address_per_day",
    "tickets_per_sender_per_day",
    "verification_lockout_min",
    "webhook_max_skew_s",
    "wechat_allow_plaintext",
    "wechat_api_base",
    "wechat_app_id",
    "wechat_app_secret",
    "wechat_default_language",
    "wechat_encoding_aes_key",
    "wechat_max_clock_skew_s",
    "wechat_passive_timeout_s",
    "wechat_token",
    "widget_allowed_origins",
    "widget_demo",
    "widget_user_secret",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting of the machine running the tests leaks in."""
    import os

    for name in list(os.environ):
        low = name.lower()
        if (
            low in LEGACY_NAMES
            or "__" in low
            or low
            in {
                "host",
                "port",
                "log_level",
                "supportbot_demo",
                "demo",
                "supportbot_settings_file",
                "supportbot_demo_agent_password",
            }
        ):
            monkeypatch.delenv(name)


def other_value(default: Any) -> tuple[str, Any]:
    """An environment string for a field and the value it must give, unlike the default."""
    if isinstance(default, bool):
        return str(not default).lower(), not default
    if isinstance(default, int):
        return str(default + 7), default + 7
    if isinstance(default, float):
        return str(default + 0.01), default + 0.01
    if isinstance(default, Decimal):
        return "99.50", Decimal("99.50")
    if isinstance(default, Path):
        return "/srv/elsewhere", Path("/srv/elsewhere")
    if isinstance(default, SecretStr):
        return "s3cret-value", "s3cret-value"
    if isinstance(default, list):
        return json.dumps(["https://a.example"]), ["https://a.example"]
    if isinstance(default, dict):
        return json.dumps({"ru": 0.5}), {"ru": 0.5}
    return "changed-value", "changed-value"


def plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def test_every_earlier_name_is_still_a_setting() -> None:
    top = {"host", "port", "log_level", "demo"}
    # flat names since issue 16 (REDIS_URL beside DATABASE_URL, the Rasa replicas of a cluster, SINGLE_REPLICA,
    # KB_INDEX_DIR, KB_REFRESH_S): new, not earlier
    added = {"redis_url", "rasa_replica_urls", "rasa_haproxy_socket", "rasa_haproxy_backend", "single_replica",
             "kb_index_dir", "kb_refresh_s"}
    assert set(BEFORE) | added == set(LEGACY_NAMES) | top
    assert top <= set(Settings.model_fields)


@pytest.mark.parametrize("flat", sorted(LEGACY_NAMES))
def test_earlier_environment_variable_sets_its_section(flat: str, monkeypatch: pytest.MonkeyPatch) -> None:
    section, field, _envs = LEGACY_NAMES[flat]
    raw, expected = other_value(SECTIONS[section]().__getattribute__(field))
    monkeypatch.setenv(flat.upper(), raw)
    s = Settings()
    assert plain(getattr(getattr(s, section), field)) == expected
    assert plain(getattr(s, flat)) == expected  # the flat attribute reads the section


def test_nested_names_work_and_win_over_the_flat_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_EMBEDDER", "flat")
    monkeypatch.setenv("OPS_LOW_CONFIDENCE", "0.3")
    monkeypatch.setenv("OPS__LOW_CONFIDENCE", "0.2")
    monkeypatch.setenv("SECURITY__REST_API_KEYS", '["k1"]')
    monkeypatch.setenv("SUPPORTBOT_DEMO_AGENT_PASSWORD", "pw")
    monkeypatch.setenv("SUPPORTBOT_DEMO", "true")
    s = Settings()
    assert (s.kb.embedder, s.ops.low_confidence, s.demo) == ("flat", 0.2, True)
    assert [k.get_secret_value() for k in s.security.rest_api_keys] == ["k1"]
    assert s.handoff.demo_agent_password.get_secret_value() == "pw"


def test_keywords_attributes_and_copies_use_flat_names(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, kb_embedder="minilm", channel_rate_limit_count=5, demo=True)
    assert (s.storage.data_dir, s.kb.embedder, s.channels.rate_limit_count) == (tmp_path, "minilm", 5)
    assert s.sqlalchemy_url == f"sqlite:///{tmp_path / 'supportbot.db'}" and s.kb_data_dir == tmp_path / "kb"
    copy = s.model_copy(update={"max_upload_bytes": 10, "demo": False})
    assert (copy.security.max_upload_bytes, copy.max_upload_bytes, copy.demo) == (10, 10, False)
    assert s.max_upload_bytes == 20 * 1024 * 1024 and s.demo  # the original is not changed
    s.widget_allowed_origins = ["https://shop.example"]
    assert s.widget.allowed_origins == ["https://shop.example"]
    with pytest.raises(AttributeError):
        _ = s.no_such_setting
    with pytest.raises(ValidationError):
        Settings(ops_cluster_distance={"fr": 0.5})
    with pytest.raises(ValidationError):  # a misspelt nested name is an error, not ignored
        Settings(kb={"embeder": "x"})


def test_toml_file_takes_tables_and_flat_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "supportbot.toml"
    path.write_text('kb_lexical_weight = 0.5\nhandoff_smtp_host = "mail"\n[handoff]\nfailure_turns = 4\n')
    monkeypatch.setenv("SUPPORTBOT_SETTINGS_FILE", str(path))
    monkeypatch.setenv("HANDOFF_SMTP_HOST", "env-mail")  # the environment wins over the file
    s = Settings()
    assert (s.kb.lexical_weight, s.handoff.failure_turns, s.handoff.smtp_host) == (0.5, 4, "env-mail")


def test_module_configs_take_their_defaults_from_the_sections() -> None:
    from channels.ratelimit import Quota
    from handoff.policy import PolicyConfig
    from kb_index.config import KBConfig, answer_policy
    from kb_index.decision import AnswerPolicy
    from ops.analytics import AnalyticsConfig
    from ops.gate import GatePolicy
    from ops.grouping import DEFAULT_ATTACH, DEFAULT_DISTANCE
    from ops.inbox import InboxConfig

    s = Settings()
    assert KBConfig() == KBConfig.from_settings(s)
    assert AnswerPolicy() == answer_policy(s)
    assert answer_policy(Settings(kb_answer_threshold=0.9)).threshold == 0.9
    p = PolicyConfig()
    assert (p.failure_turns, p.frustration_threshold, p.offer_cooldown_turns, p.max_verification_attempts) == (
        s.handoff.failure_turns,
        s.handoff.frustration_threshold,
        s.handoff.offer_cooldown_turns,
        s.store.max_verification_attempts,
    )
    i = InboxConfig()
    assert (i.low_confidence, i.rephrase_window_turns, i.rephrase_similarity) == (
        s.ops.low_confidence,
        s.ops.rephrase_window_turns,
        s.ops.rephrase_similarity,
    )
    assert (s.ops.cluster_distance, s.ops.cluster_attach) == (DEFAULT_DISTANCE, DEFAULT_ATTACH)
    g = GatePolicy()
    assert (g.margin_points, g.strong_f1, g.floor_f1) == (
        s.ops.gate_accuracy_margin,
        s.ops.gate_strong_f1,
        s.ops.gate_floor_f1,
    )
    assert AnalyticsConfig().session_gap.total_seconds() == s.ops.session_gap_min * 60
    assert Quota().storage_uri == s.security.rate_limit_storage
