"""One configuration object, read once at start-up from the environment (and a .env file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/wuye.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      populate_by_name=True)

    database_url: str = Field(DEFAULT_DATABASE_URL, validation_alias=AliasChoices("DATABASE_URL", "WUYE_DATABASE_URL"))
    bot_token: SecretStr | None = Field(None, validation_alias=AliasChoices("BOT_TOKEN", "WUYE_BOT_TOKEN"))
    telegram_api_url: str = Field("https://api.telegram.org",
                                  validation_alias=AliasChoices("TELEGRAM_API_URL", "WUYE_TELEGRAM_API_URL"))
    # Deadline policy (TOML, see config/policy.example.toml) and category → role routing (TOML).
    policy_file: Path | None = Field(None, validation_alias="WUYE_POLICY_FILE")
    routing_file: Path | None = Field(None, validation_alias="WUYE_ROUTING_FILE")
    rules_file: Path | None = Field(None, validation_alias="WUYE_RULES_FILE")
    hotline: str = Field("400-800-1234", validation_alias="WUYE_HOTLINE")
    daily_summary_time: str = Field("09:00", validation_alias="WUYE_DAILY_SUMMARY_TIME")
    webhook_host: str = Field("0.0.0.0", validation_alias="WUYE_WEBHOOK_HOST")
    webhook_port: int = Field(8081, validation_alias="WUYE_WEBHOOK_PORT")
    webhook_path: str = Field("/telegram/webhook", validation_alias="WUYE_WEBHOOK_PATH")
    webhook_url: str | None = Field(None, validation_alias="WUYE_WEBHOOK_URL")
    webhook_secret: SecretStr | None = Field(None, validation_alias="WUYE_WEBHOOK_SECRET")
    sandbox_host: str = Field("127.0.0.1", validation_alias="WUYE_SANDBOX_HOST")
    sandbox_port: int = Field(8080, validation_alias="WUYE_SANDBOX_PORT")
    log_level: str = Field("INFO", validation_alias="WUYE_LOG_LEVEL")
    # How often due timers (reminders, deadlines, summaries) are looked for, in seconds.
    timer_interval: float = Field(15.0, gt=0, validation_alias="WUYE_TIMER_INTERVAL")
