"""Head-end settings: a YAML file (`--config`) overridden by `ASKUE_*` environment variables."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(ValueError):
    """Settings that cannot be used; the message names the file/variable and the field."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dsn: str = "postgresql://postgres@127.0.0.1:5432/askue"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(1883, ge=1, le=65535)
    mqtt_root: str = "askue"
    # Empty: a plain subscription. mosquitto 2.0 does not restore shared subscriptions from its
    # persistence file, so with a group, messages published between a broker restart and the
    # workers' resubscription are dropped; set a group only to split load over several workers.
    mqtt_group: str = ""
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_tls: bool = False
    mqtt_ca_file: str | None = None
    mqtt_cert_file: str | None = None
    mqtt_key_file: str | None = None
    mqtt_client_id: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    timezone: str = "Europe/Moscow"
    # ingest batching: flush when this many values are pending or the oldest waited this long
    batch_values: int = Field(20000, ge=1)
    batch_linger_s: float = Field(0.05, gt=0, le=10)
    ingest_writers: int = Field(2, ge=1, le=16)  # batches written concurrently (needs pool_max >= this)
    receive_maximum: int = Field(1000, ge=1, le=65535)
    pool_min: int = Field(1, ge=1)
    pool_max: int = Field(8, ge=1)
    # Prometheus figures are at the API's /metrics; this port serves them too (for --ingest-only workers)
    metrics_port: int | None = Field(None, ge=0, le=65535)
    # commands to gateways: how long a command may wait (offline gateway, no answer) before it
    # expires unless the sender asks otherwise, and how often waiting commands are looked at
    # besides the database's notifications
    command_ttl_s: float = Field(3600, ge=10, le=7 * 86400)
    command_poll_s: float = Field(5, gt=0, le=300)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name such as Europe/Moscow") from None
        return v

    @field_validator("mqtt_group")
    @classmethod
    def _group(cls, v: str) -> str:
        if any(c in v for c in "/+#$"):
            raise ValueError("shared subscription group must not contain '/', '+', '#', '$' (empty: no group)")
        return v


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the YAML file (optional), then `ASKUE_<FIELD>` env vars, then explicit overrides."""
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except OSError as e:
            raise ConfigError(f"{p}: cannot read config file ({e.strerror})") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({e})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: top level must be a mapping of setting: value")
        # a file may keep head-end settings under a `headend:` key next to other sections
        data.update(loaded.get("headend", loaded) if isinstance(loaded.get("headend"), dict) else loaded)
    env = os.environ if env is None else env
    for name in Settings.model_fields:
        key = "ASKUE_" + name.upper()
        if key in env:
            data[name] = env[key]
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**data)
    except ValidationError as e:
        where = f"{path}" if path else "settings"
        problems = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"{where}: {problems} (env vars ASKUE_<FIELD> override the file)") from None
