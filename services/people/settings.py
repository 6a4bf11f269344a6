"""The people service's own settings (``KAPOK_PEOPLE_*``), beside `shared.settings`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import Settings


class PeopleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAPOK_PEOPLE_", extra="ignore")

    master_key_file: Path | None = Field(
        default=None,
        description="the master keyring (JSON, 0600); default <data_dir>/people/master-keys.json,"
        " made on first start; Kapok rewrites it on every forget (key rotation)",
    )
    retention_days: int = Field(
        default=365, ge=1, description="details forgotten this long after the last contact"
    )
    sweep_s: float = Field(default=3600.0, gt=0, description="how often retention is applied")

    def keyring_path(self, settings: Settings) -> Path:
        return self.master_key_file or settings.data_dir / "people" / "master-keys.json"
