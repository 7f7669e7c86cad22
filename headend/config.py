"""Head-end settings: a YAML file (`--config`) overridden by `ASKUE_*` environment variables."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """Settings that cannot be used; the message names the file/variable and the field."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dsn: str = "postgresql://postgres@127.0.0.1:5432/askue"
    # A streaming replica of `dsn` for what only reads: API and page reads, exports, Grafana.
    # Writes and the reads that must see them go to `dsn` (see docs/scaling.md).
    read_dsn: str | None = None
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
    # in-flight QoS 1 messages the broker may send a worker (room for a batch of small messages)
    receive_maximum: int = Field(10000, ge=1, le=65535)
    # the worker stops reading from the broker while this many values wait for their commit
    # (its memory bound: a gateway's message holds up to 10,000 values, so messages are not enough)
    ingest_max_pending_values: int = Field(120000, ge=1000)
    pool_min: int = Field(1, ge=1)
    pool_max: int = Field(8, ge=1)
    # Prometheus figures are at the API's /metrics; this port serves them too (for --ingest-only workers)
    metrics_port: int | None = Field(None, ge=0, le=65535)
    # Where operators reach the pages: links in alert e-mails and webhooks (default: http://api_host:api_port)
    public_url: str | None = None

    # ---- alerts (askue.headend.notify) ----
    smtp_host: str | None = None  # None: no e-mail is sent (deliveries wait and retry)
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str | None = None
    smtp_ca_file: str | None = None  # CA that signed the server's certificate (system CAs when absent)
    smtp_timeout_s: float = Field(30, gt=0, le=600)
    webhook_timeout_s: float = Field(10, gt=0, le=600)
    notify_poll_s: float = Field(5, gt=0, le=3600)
    notify_retry_base_s: float = Field(30, gt=0, le=86400)  # a failed send waits base·2^(n−1), at most an hour
    notify_max_attempts: int = Field(10, ge=1, le=100)

    # ---- the web map's base layer ----
    # {z}/{x}/{y} tile URL (OpenStreetMap's standard tiles by default, which need the internet);
    # empty: no base layer. map_tiles_dir or map_mbtiles: the head-end serves the tiles itself.
    map_tile_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    map_attribution: str = '&copy; <a href="https://www.openstreetmap.org/copyright">участники OpenStreetMap</a>'
    map_tiles_dir: str | None = None  # a folder of {z}/{x}/{y}.png (or .jpg, .webp)
    map_mbtiles: str | None = None  # an MBTiles file (SQLite)
    map_max_zoom: int = Field(19, ge=1, le=22)

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

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("public_url starts with http:// or https://, e.g. https://askue.example.ru")
        return v.rstrip("/") if v else None

    @field_validator("map_tile_url")
    @classmethod
    def _tile_url(cls, v: str) -> str:
        if v and not (v.startswith(("http://", "https://", "/")) and all(k in v for k in ("{z}", "{x}", "{y}"))):
            raise ValueError("map_tile_url is an http(s) URL with {z}, {x} and {y}, e.g. "
                             "https://tile.openstreetmap.org/{z}/{x}/{y}.png (empty: no base map)")
        return v

    @model_validator(mode="after")
    def _map(self) -> Settings:
        if self.map_tiles_dir and self.map_mbtiles:
            raise ValueError("map_tiles_dir and map_mbtiles: give one offline tile source, not both")
        return self

    @model_validator(mode="after")
    def _smtp(self) -> Settings:
        if self.smtp_host and not self.smtp_from:
            raise ValueError("smtp_from: give the sender address of alert e-mails when smtp_host is set")
        if bool(self.smtp_username) != bool(self.smtp_password):
            raise ValueError("smtp_username and smtp_password: give both (login) or neither")
        if not (self.smtp_username or "").isascii() or not (self.smtp_password or "").isascii():
            raise ValueError("smtp_username and smtp_password: SMTP AUTH LOGIN sends ASCII only; use Latin letters, "
                             "digits and punctuation")
        return self

    @property
    def base_url(self) -> str:
        """The head-end's address for links people follow."""
        return self.public_url or f"http://{self.api_host}:{self.api_port}"

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
        problems = "; ".join((f"{'.'.join(str(x) for x in err['loc'])}: " if err["loc"] else "") + err["msg"]
                             for err in e.errors())
        raise ConfigError(f"{where}: {problems} (env vars ASKUE_<FIELD> override the file)") from None
