"""Settings, read from the environment (prefix ``PAYCELL_``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB_PATH = Path("var") / "paycell.db"
DEV_OPERATOR_KEY = "dev-operator-key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYCELL_", env_file=".env", extra="ignore")

    environment: str = "development"
    database_url: str = f"sqlite:///{DEFAULT_DB_PATH}"
    host: str = "127.0.0.1"
    port: int = 8000
    # Operators authenticate with this key until the back office brings logins.
    operator_api_key: str = DEV_OPERATOR_KEY
    # Hot accounts (fees, commission revenue) are spread over this many shard rows.
    hot_account_shards: int = 16
    # Largest number of transfers the group-commit batcher writes in one transaction.
    batch_max: int = 8190
    # How often the in-process worker looks for expired holds, in seconds.
    expiry_interval_s: int = 5
    run_workers: bool = True

    @model_validator(mode="after")
    def _refuse_dev_secrets(self) -> Settings:
        if self.environment != "development" and self.operator_api_key == DEV_OPERATOR_KEY:
            raise ValueError(
                "PAYCELL_OPERATOR_API_KEY still has the development default; "
                "set a secret of your own outside development"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
