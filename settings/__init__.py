"""One typed settings object for the whole application, in sections.

Values come from, highest first: keyword arguments (``Settings(...)``, tests), environment
variables, then an optional TOML file named by ``SUPPORTBOT_SETTINGS_FILE``. Every threshold lives
here, once, with the reason for its default; the modules' own config dataclasses
(``kb_index.config.KBConfig``, ``handoff.policy.PolicyConfig``, ``ops.inbox.InboxConfig``, ...) take
their defaults from these sections, so that a deployment can change behaviour without touching code.

Sections and their environment variables (pydantic-settings nested models):

==========  =====================================  ==========================================================
section     nested variable (``__`` = one level)    earlier flat name, still read
==========  =====================================  ==========================================================
(top)       ``HOST``, ``PORT``, ``LOG_LEVEL``      the same; ``SUPPORTBOT_DEMO`` (or ``DEMO``) for ``demo``
storage     ``STORAGE__DATA_DIR``                  ``DATA_DIR``, ``DATABASE_URL``
rasa        ``RASA__URL``, ``RASA__TIMEOUT_S``     ``RASA_<FIELD>``; ``MODEL_DIR``, ``RETRY_AFTER_S``,
                                                   ``ACTION_SERVER_TOKEN`` keep their names
security    ``SECURITY__RATE_LIMIT_PER_IP``        the field's name (``SECRET_KEY``, ``MAX_BODY_BYTES``, ...)
store       ``STORE__AUTO_REFUND_LIMIT``           the field's name (``AUTO_REFUND_LIMIT``, ...)
channels    ``CHANNELS__TELEGRAM_BOT_TOKEN``       the field's name; ``CHANNEL_<FIELD>`` for ``rate_limit_count``,
                                                   ``rate_limit_window_s``, ``max_text_chars``, ``inbound_retry_s``,
                                                   ``api_timeout_s``
widget      ``WIDGET__USER_SECRET``                ``WIDGET_<FIELD>``
handoff     ``HANDOFF__FAILURE_TURNS``             ``HANDOFF_<FIELD>``; also ``SUPPORTBOT_DEMO_AGENT_PASSWORD``
kb          ``KB__EMBEDDER``                       ``KB_<FIELD>``
ops         ``OPS__LOW_CONFIDENCE``                ``OPS_<FIELD>``
==========  =====================================  ==========================================================

A nested variable wins over its earlier flat name when both are set. Complex values (lists,
mappings) are JSON in either form (``SECURITY__REST_API_KEYS='["k1"]'`` or ``REST_API_KEYS=...``).
The TOML file takes tables (``[kb]`` ``embedder = "..."``) or the flat names (``kb_embedder = ...``).
``Settings(kb_embedder=...)`` and ``settings.kb_embedder`` keep working for every flat name
(``LEGACY_NAMES`` is the whole map); new code reads the section: ``settings.kb.embedder``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .sections import (
    ROOT,
    SECTIONS,
    ChannelsSettings,
    HandoffSettings,
    KbSettings,
    OpsSettings,
    RasaSettings,
    Section,
    SecuritySettings,
    StorageSettings,
    StoreSettings,
    WidgetSettings,
)

__all__ = [
    "LEGACY_NAMES",
    "ROOT",
    "SECTIONS",
    "ChannelsSettings",
    "HandoffSettings",
    "KbSettings",
    "OpsSettings",
    "RasaSettings",
    "Section",
    "SecuritySettings",
    "Settings",
    "StorageSettings",
    "StoreSettings",
    "WidgetSettings",
    "get_settings",
    "nest",
]


def nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """Flat names (``kb_embedder``) moved into their sections (``{"kb": {"embedder": ...}}``)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        where = LEGACY_NAMES.get(key.lower())
        if where is None:
            out[key] = value
        elif isinstance(out.setdefault(where[0], {}), dict):
            out[where[0]][where[1]] = value
    return out


class _LegacyEnvSource(PydanticBaseSettingsSource):
    """The earlier flat environment variables (``KB_EMBEDDER``), read into their sections."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, "", False  # unused: __call__ reads every name itself

    def __call__(self) -> dict[str, Any]:
        env = {name.lower(): value for name, value in os.environ.items()}
        out: dict[str, dict[str, Any]] = {}
        for section, field, envs in LEGACY_NAMES.values():
            name = next((n for n in envs if n in env), None)
            if name is not None:
                info = SECTIONS[section].model_fields[field]
                out.setdefault(section, {})[field] = self.prepare_field_value(field, info, env[name], False)
        return out


class _Nested:
    """Another source's flat names put into their sections (keyword arguments, the TOML file)."""

    def __init__(self, source: Callable[[], dict[str, Any]]) -> None:
        self.source = source
        self.__name__ = f"Nested{type(source).__name__}"

    def __call__(self) -> dict[str, Any]:
        return nest(self.source())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="", env_nested_delimiter="__")

    # --- gateway -------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    # Demo mode (`make run` turns it on): the demo agents (alice, wei, olga) and the /demo store page
    # exist only here. Off in production: only the admin account is created.
    demo: bool = Field(default=False, validation_alias=AliasChoices("SUPPORTBOT_DEMO", "demo"))

    storage: StorageSettings = Field(default_factory=StorageSettings)
    rasa: RasaSettings = Field(default_factory=RasaSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    channels: ChannelsSettings = Field(default_factory=ChannelsSettings)
    widget: WidgetSettings = Field(default_factory=WidgetSettings)
    handoff: HandoffSettings = Field(default_factory=HandoffSettings)
    kb: KbSettings = Field(default_factory=KbSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)

    @property
    def kb_data_dir(self) -> Path:
        """Where the knowledge-base index lives (kb_index CLI default): ``KB_INDEX_DIR``, else DATA_DIR/kb."""
        return Path(self.kb.index_dir) if self.kb.index_dir else self.storage.data_dir / "kb"

    @property
    def sqlalchemy_url(self) -> str:
        return self.storage.sqlalchemy_url

    @property
    def redis_url(self) -> str:
        return self.storage.redis_url

    def __setattr__(self, name: str, value: Any) -> None:
        where = LEGACY_NAMES.get(name)
        if where is None:
            super().__setattr__(name, value)
        else:
            setattr(getattr(self, where[0]), where[1], value)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Settings:
        """``update`` may use flat names; a section it changes is copied, never changed in place."""
        nested = {
            key: getattr(self, key).model_copy(update=value) if key in SECTIONS and isinstance(value, dict) else value
            for key, value in nest(update or {}).items()
        }
        return super().model_copy(update=nested or None, deep=deep)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[Any, ...]:
        sources: list[Any] = [_Nested(init_settings), env_settings, _LegacyEnvSource(settings_cls)]
        settings_file = os.environ.get("SUPPORTBOT_SETTINGS_FILE")
        if settings_file:
            sources.append(_Nested(TomlConfigSettingsSource(settings_cls, toml_file=settings_file)))
        return tuple(sources)


def _legacy_names() -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """Earlier flat name → (section, field, environment variables read for it, lower case)."""
    out: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    for section, model in SECTIONS.items():
        for field in model.model_fields:
            flat = model.legacy_names.get(field, model.legacy_prefix + field)
            if flat in out or flat in SECTIONS or flat in Settings.model_fields:
                raise RuntimeError(f"settings: flat name {flat!r} is used twice")
            out[flat] = (section, field, (*model.legacy_env.get(field, ()), flat))
    return out


LEGACY_NAMES = _legacy_names()


def _flat_property(section: str, field: str) -> property:
    def get(self: Settings) -> Any:
        return getattr(getattr(self, section), field)

    return property(get, doc=f"The earlier flat name of ``{section}.{field}``.")


# The earlier flat names, read (and, through __setattr__, written) through their sections:
# settings.kb_embedder is settings.kb.embedder, so that code and tests written before the sections
# keep working. Properties (data descriptors), so that pytest's monkeypatch restores them too.
for _flat, (_section, _field, _envs) in LEGACY_NAMES.items():
    setattr(Settings, _flat, _flat_property(_section, _field))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests build their own ``Settings(...)`` instead."""
    return Settings()
