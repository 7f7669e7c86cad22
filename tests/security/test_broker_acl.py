"""deploy/mosquitto against a real mosquitto: per-gateway passwords and the ACL.

A gateway may publish only under askue/v1/<its id>/ and read only its own cmd; the
head-end reads everything and writes only cmd. Each refusal is shown by a sentinel: a
permitted message sent after the forbidden one arrives, and the forbidden one did not.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from broker import HEADEND_USER, Client, DeployedBroker

USERS = {HEADEND_USER: "he-secret-1", "gw1": "gw1-secret", "gw2": "gw2-secret"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedBroker]:
    b = DeployedBroker(tmp_path_factory.mktemp("deployed-broker"), USERS).start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def clients(broker: DeployedBroker) -> Iterator[dict[str, Client]]:
    out: dict[str, Client] = {}
    for user, pw in USERS.items():
        c = Client(user, pw, broker.plain_port)
        assert c.connect(), f"{user} could not connect with its own password"
        out[user] = c
    try:
        yield out
    finally:
        for c in out.values():
            c.close()


def test_gateway_cannot_publish_as_another(clients: dict[str, Client]) -> None:
    he, gw1 = clients[HEADEND_USER], clients["gw1"]
    he.subscribe("askue/v1/+/data")
    he.subscribe("askue/v1/+/state")
    for kind in ("data", "state"):
        gw1.publish(f"askue/v1/gw2/{kind}", b"forged by gw1")
        gw1.publish(f"askue/v1/gw1/{kind}", b"sentinel")
        got = he.wait_for(f"askue/v1/gw1/{kind}", b"sentinel")
        assert all(t.split("/")[2] == "gw1" for t, _ in got), got
    # nor outside the askue tree, nor onto the command topic of its own or another gateway
    he.subscribe("#")
    for topic in ("askue/v1/gw2/cmd", "askue/v1/gw1/cmd", "other/topic", "askue/v1/gw1/data/x"):
        gw1.publish(topic, b"forged")
    gw1.publish("askue/v1/gw1/health", b"sentinel")
    got = he.wait_for("askue/v1/gw1/health", b"sentinel")
    assert [m for m in got if m[1] == b"forged"] == []


def test_gateway_reads_only_its_own_commands(clients: dict[str, Client]) -> None:
    he, gw1, gw2 = clients[HEADEND_USER], clients["gw1"], clients["gw2"]
    gw1.subscribe("askue/v1/gw2/cmd")
    gw1.subscribe("askue/v1/+/cmd")
    gw1.subscribe("askue/v1/gw2/#")
    gw1.subscribe("#")
    gw1.subscribe("askue/v1/gw1/cmd")
    gw2.subscribe("askue/v1/gw2/cmd")
    he.publish("askue/v1/gw2/cmd", b"for gw2 only")
    assert gw2.wait_for("askue/v1/gw2/cmd", b"for gw2 only")
    # another gateway's data is not readable either
    gw2.publish("askue/v1/gw2/data", b"gw2 data")
    he.publish("askue/v1/gw1/cmd", b"for gw1")
    got = gw1.wait_for("askue/v1/gw1/cmd", b"for gw1")
    assert got == [("askue/v1/gw1/cmd", b"for gw1")], got


def test_headend_writes_only_commands(clients: dict[str, Client]) -> None:
    he, gw1 = clients[HEADEND_USER], clients["gw1"]
    watcher = clients["gw2"]
    watcher.subscribe("askue/v1/gw2/#")
    he.publish("askue/v1/gw2/data", b"forged by head-end")
    he.publish("askue/v1/gw2/state", b"forged by head-end")
    he.publish("askue/v1/gw2/cmd", b"sentinel")
    assert watcher.wait_for("askue/v1/gw2/cmd", b"sentinel") == [("askue/v1/gw2/cmd", b"sentinel")]
    # the head-end reads command results (and shared subscriptions work with the ACL)
    he.subscribe("$share/askue-headend/askue/v1/+/cmd/result")
    gw1.publish("askue/v1/gw1/cmd/result", b"done")
    assert he.wait_for("askue/v1/gw1/cmd/result", b"done")


@pytest.mark.parametrize("user,password", [
    ("gw2", "gw1-secret"),          # gw1 posing as gw2 with its own password
    ("gw1", "wrong"),
    ("gw1", ""),
    (HEADEND_USER, "gw1-secret"),
    ("unknown-gw", "whatever"),
    (None, None),                   # anonymous
])
def test_wrong_credentials_are_refused(broker: DeployedBroker, user: str | None, password: str | None) -> None:
    c = Client(user, password, broker.plain_port)
    try:
        assert not c.connect()
    finally:
        c.close()


def test_plain_listener_is_loopback_only_and_tls_listener_needs_tls(broker: DeployedBroker) -> None:
    conf = (broker.root / "mosquitto.conf").read_text()
    assert f"listener {broker.plain_port} 127.0.0.1" in conf
    c = Client("gw1", "gw1-secret", broker.tls_port)  # plain MQTT to the TLS port
    try:
        with pytest.raises(Exception):  # noqa: B017 - the TLS listener drops the plain handshake
            if not c.connect():
                raise ConnectionError("refused")
    finally:
        c.close()


def test_tls_with_the_ca_and_refused_with_another(broker: DeployedBroker, tmp_path: Path) -> None:
    ok = Client("gw1", "gw1-secret", broker.tls_port, ca=broker.root / "certs" / "ca.crt")
    try:
        assert ok.connect()
    finally:
        ok.close()
    from broker import make_certs

    other = make_certs(tmp_path / "other")
    bad = Client("gw1", "gw1-secret", broker.tls_port, ca=other / "ca.crt")
    try:
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            bad.connect()
    finally:
        bad.close()


def test_gateway_publishes_over_tls_with_its_config(broker: DeployedBroker, clients: dict[str, Client]) -> None:
    """The gateway's own TLS options (gateway/config.py → Publisher's paho client), a real publish."""
    from askue.contract import decode_state
    from askue.gateway.config import parse_config
    from askue.gateway.publisher import Publisher

    he = clients[HEADEND_USER]
    he.subscribe("askue/v1/+/state")
    he.subscribe("askue/v1/+/health")
    cfg = parse_config(f"""
gateway: {{id: gw1}}
broker:
  host: localhost
  port: {broker.tls_port}
  username: gw1
  password: gw1-secret
  tls: {{ca_file: {broker.root / "certs" / "ca.crt"}}}
""", "gw1.yaml")
    pub = Publisher(cfg.gateway, cfg.broker, None, lambda meters: [], lambda payload: None)  # type: ignore[arg-type]
    pub.client.connect(cfg.broker.host, cfg.broker.port, keepalive=30)
    pub.client.loop_start()
    try:
        # on connect the publisher announces itself (retained state, online) on its own topic
        got: list[tuple[str, bytes]] = []
        while not any(t == "askue/v1/gw1/state" and decode_state(p).online for t, p in got):
            got.append(he.received.get(timeout=30))
        pub.client.publish("askue/v1/gw1/health", b"over tls", qos=1).wait_for_publish(10)
        assert he.wait_for("askue/v1/gw1/health", b"over tls", timeout=30)
    finally:
        pub.client.disconnect()
        pub.client.loop_stop()


async def test_headend_link_over_tls_with_its_credentials(broker: DeployedBroker, clients: dict[str, Client]) -> None:
    """The head-end's own MQTT link (askue.headend.mqtt, not paho) through the TLS listener:
    the CA from the settings, its user's password; a gateway's message arrives and is
    acknowledged, a command goes out with its expiry; a wrong password is refused with the
    broker's reason."""
    import asyncio

    from askue.headend import mqtt
    from askue.headend.config import Settings

    s = Settings(dsn="postgresql:///unused", mqtt_host="localhost", mqtt_port=broker.tls_port, mqtt_tls=True,
                 mqtt_ca_file=str(broker.root / "certs" / "ca.crt"), mqtt_username=HEADEND_USER,
                 mqtt_password=USERS[HEADEND_USER])
    got: asyncio.Queue = asyncio.Queue()
    link = mqtt.link(s, "he-tls-test", got.put_nowait)
    gw1 = clients["gw1"]
    gw1.subscribe("askue/v1/gw1/cmd")
    try:
        assert await link.connect() in (True, False)
        await link.subscribe(["askue/v1/+/data"])
        await asyncio.to_thread(gw1.publish, "askue/v1/gw1/data", b'{"x": 1}')
        m = await asyncio.wait_for(got.get(), 10)
        assert (m.topic, m.payload, m.qos) == ("askue/v1/gw1/data", b'{"x": 1}', 1)
        link.ack(m.mid, m.qos)
        await link.publish("askue/v1/gw1/cmd", b"relay", qos=1, expiry_s=60)
        assert ("askue/v1/gw1/cmd", b"relay") in await asyncio.to_thread(gw1.wait_for, "askue/v1/gw1/cmd", b"relay")
    finally:
        await link.close()
    wrong = mqtt.link(s.model_copy(update={"mqtt_password": "not-it"}), "he-tls-wrong", lambda m: None)
    try:
        with pytest.raises(mqtt.LinkLost, match="not authorized|bad user name or password"):
            await wrong.connect()
    finally:
        await wrong.close()
