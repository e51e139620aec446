"""Alembic entry points: upgrade the schema, find the migrations folder."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config

_REPO_ROOT = Path(__file__).resolve().parents[3]


def migrations_dir() -> Path:
    """The `migrations/` folder: $CSMS_MIGRATIONS_DIR, ./migrations, or the source checkout's."""
    candidates = [os.environ.get("CSMS_MIGRATIONS_DIR"), "migrations", _REPO_ROOT / "migrations"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "env.py").is_file():
            return Path(candidate).resolve()
    raise FileNotFoundError("migrations folder not found; set CSMS_MIGRATIONS_DIR")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    return config


def upgrade_to_head(database_url: str) -> None:
    """Apply every migration not yet applied. Must be called outside a running event loop."""
    command.upgrade(alembic_config(database_url), "head")
