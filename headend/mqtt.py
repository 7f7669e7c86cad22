"""The head-end's MQTT clients (ingest, command dispatcher): MQTT 5, a persistent session
under a stable client id, TLS and credentials from the settings, and acknowledgements by
hand — a message is acknowledged only after what it carried is committed, so a crash in
between makes the broker deliver it again."""
from __future__ import annotations

import socket
import ssl

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from askue.headend.config import Settings


def tls_context(s: Settings) -> ssl.SSLContext | None:
    if not s.mqtt_tls:
        return None
    ctx = ssl.create_default_context(cafile=s.mqtt_ca_file)
    if s.mqtt_cert_file:
        ctx.load_cert_chain(s.mqtt_cert_file, s.mqtt_key_file)
    return ctx


def client_id(s: Settings, suffix: str = "") -> str:
    """Stable across restarts: a restarted worker must resume its persistent session. A new id
    per process (the pid) left the old session in the shared group, where the broker kept
    queuing its share of the data for nobody (lost on session expiry). Several workers on one
    host in one group need their own mqtt_client_id."""
    base = s.mqtt_client_id or "-".join(x for x in ("askue-headend", socket.gethostname(), s.mqtt_group) if x)
    return base + suffix


def make_client(s: Settings, identifier: str, *, receive_maximum: int | None = None,
                session_expiry_s: int = 86400) -> aiomqtt.Client:
    """A client whose messages are acknowledged by `ack(client, message)`."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry_s  # keep unacked messages for us across a restart
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum  # in-flight QoS 1 messages the broker may send us
    client = aiomqtt.Client(
        s.mqtt_host, s.mqtt_port, identifier=identifier, username=s.mqtt_username, password=s.mqtt_password,
        protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props, tls_context=tls_context(s),
        max_queued_incoming_messages=0,
    )
    # aiomqtt 2.5 has no manual-ack switch of its own; paho's is on the wrapped client
    client._client.manual_ack_set(True)
    return client


def acker(client: aiomqtt.Client, m: aiomqtt.Message):
    """A callable that acknowledges `m` (nothing to do for QoS 0)."""
    if m.qos == 0:
        return lambda: None
    paho, mid, qos = client._client, m.mid, m.qos
    return lambda: paho.ack(mid, qos)
