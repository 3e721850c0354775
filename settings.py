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

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

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

    # --- store policies ------------------------------------------------------------------
    # Refunds above this amount are recorded but must be approved by a person (ABCD guideline).
    auto_refund_limit: Decimal = Decimal("150.00")
    max_verification_attempts: int = 3

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
