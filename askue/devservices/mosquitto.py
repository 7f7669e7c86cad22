"""A private mosquitto broker on loopback."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from askue.devservices.ports import free_port, wait_port
from askue.devservices.processes import terminate


def mosquitto_bin() -> str:
    for p in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if p and os.path.exists(p):
            return p
    raise RuntimeError(
        "mosquitto not found. Install it with: apt-get install -y mosquitto   (or run `make deps` as root)"
    )


@dataclass
class Mosquitto:
    root: Path
    port: int = 0
    host: str = "127.0.0.1"
    persistence: bool = False
    extra_config: str = ""  # e.g. password_file/acl_file/TLS listener lines
    max_queued_messages: int = 100000  # per client session; 0: no limit (a benchmark's broker backlog)
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        if not self.port:
            self.port = free_port()

    def write_config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.root / "mosquitto.conf"
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true" if "password_file" not in self.extra_config else "allow_anonymous false",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.root}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            f"max_queued_messages {self.max_queued_messages}",
            "max_inflight_messages 100",
            "set_tcp_nodelay true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # keep file access simple in a private dev broker
        conf.write_text("\n".join(lines) + "\n" + self.extra_config + "\n")
        return conf

    def start(self) -> None:
        conf = self.write_config()
        self.log = open(self.root / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([mosquitto_bin(), "-c", str(conf)], stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        try:
            wait_port(self.host, self.port, 10)
        except TimeoutError:
            self.stop()
            raise RuntimeError(
                f"mosquitto did not start on port {self.port}; see {self.root / 'mosquitto.log'}"
            ) from None

    def stop(self) -> None:
        terminate(self.proc, 10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
