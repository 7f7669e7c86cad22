"""The production mosquitto config from deploy/mosquitto, started on loopback.

Only paths, ports and the log destination are rewritten (temp dir, free ports); the
ACL file is used unchanged, so these tests check what is deployed.
"""
from __future__ import annotations

import os
import queue
import signal
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt

from askue.devservices.mosquitto import mosquitto_bin
from askue.devservices.ports import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "mosquitto"
HEADEND_USER = "askue-headend"


def make_certs(d: Path, client: str = "gw-test") -> Path:
    subprocess.run(["bash", str(REPO / "scripts" / "make-test-certs.sh"), str(d), "localhost", client],
                   check=True, capture_output=True)
    return d


@dataclass
class DeployedBroker:
    root: Path
    users: dict[str, str]
    tls_port: int = field(default_factory=free_port)
    plain_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def start(self) -> DeployedBroker:
        r = self.root
        (r / "certs").mkdir(parents=True, exist_ok=True)
        make_certs(r / "certs")
        passwd = r / "passwd"
        passwd.touch()
        for user, pw in self.users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, pw], check=True, capture_output=True)
        (r / "acl").write_text((DEPLOY / "acl").read_text())
        conf = (DEPLOY / "mosquitto.conf").read_text()
        for old, new in [("/etc/mosquitto/askue/", f"{r}/"), ("/var/lib/mosquitto/", f"{r}/"),
                         ("listener 8883\n", f"listener {self.tls_port} 127.0.0.1\n"),
                         ("listener 1883 127.0.0.1\n", f"listener {self.plain_port} 127.0.0.1\n"),
                         ("log_dest syslog\n", f"log_dest file {r}/mosquitto.log\n")]:
            assert old in conf, f"deploy/mosquitto/mosquitto.conf no longer has {old!r}; update this test"
            conf = conf.replace(old, new)
        if os.geteuid() == 0:
            conf = "user root\n" + conf  # files in the temp dir belong to root
        (r / "mosquitto.conf").write_text(conf)
        self.proc = subprocess.Popen([mosquitto_bin(), "-c", str(r / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=open(r / "stderr.log", "wb"),
                                     start_new_session=True)
        wait_port("127.0.0.1", self.plain_port, 10)
        wait_port("127.0.0.1", self.tls_port, 10)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    @property
    def log(self) -> str:
        p = self.root / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""


class Client:
    """A paho MQTT 5 client that records what it receives and how the broker answered."""

    def __init__(self, user: str | None, password: str | None, port: int, *, client_id: str | None = None,
                 ca: Path | None = None):
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue = queue.Queue()
        self.subacks: queue.Queue = queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{user}-{time.time_ns()}",
                             protocol=mqtt.MQTTv5)
        if user is not None:
            self.c.username_pw_set(user, password)
        if ca is not None:
            self.c.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
        self.c.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.c.on_message = lambda c, u, m: self.received.put((m.topic, bytes(m.payload)))
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put(rcs)
        self.port = port

    def connect(self) -> bool:
        """True when the broker accepted the connection."""
        self.c.connect("127.0.0.1", self.port, keepalive=30)
        self.c.loop_start()
        try:
            rc = self.connack.get(timeout=10)
        except queue.Empty:
            return False
        return not rc.is_failure

    def subscribe(self, topic: str) -> list:
        self.c.subscribe(topic, qos=1)
        return self.subacks.get(timeout=10)

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(10)

    def drain(self, wait_s: float = 0.0) -> list[tuple[str, bytes]]:
        out = []
        deadline = time.monotonic() + wait_s
        while True:
            try:
                out.append(self.received.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                return out

    def wait_for(self, topic: str, payload: bytes, timeout: float = 10) -> list[tuple[str, bytes]]:
        """Everything received up to and including (topic, payload)."""
        out = []
        deadline = time.monotonic() + timeout
        while (topic, payload) not in out:
            out.append(self.received.get(timeout=max(0.01, deadline - time.monotonic())))
        return out

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
