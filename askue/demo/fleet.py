"""The demo's world: a simulated fleet, the gateways that read it, and the registry
(organisations, houses, accounts, meters) the head-end loads — all generated from
one description so they always agree."""
from __future__ import annotations

import csv
import random
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Ekaterinburg: houses are spread over a few streets around this point.
CITY_LAT, CITY_LON = 56.8389, 60.6057
STREETS = ["ул. Ленина", "ул. Малышева", "ул. Белинского", "ул. Куйбышева", "ул. Мичурина"]
ORGS = [("uk-sever", "ООО «УК Северная»", "uk"), ("tsj-rassvet", "ТСЖ «Рассвет»", "tsj")]


@dataclass(frozen=True)
class DemoPorts:
    postgres: int = 55432
    mqtt: int = 11883
    api: int = 8000
    sim_base: int = 15020  # simulator TCP ports start here


@dataclass(frozen=True)
class LinePlan:
    key: str
    protocol: str
    transport: str  # tcp | serial
    gateway: str
    count: int
    resource: str
    model: str | None = None
    password: str | None = None
    port_per_meter: bool = False  # each meter behind its own modem/port (DLMS TCP wrapper)


# 65 meters on 8 lines, two gateways. Modbus TCP lines stand for RS-485/Ethernet
# converters with several unit ids behind one port.
PLAN = [
    LinePlan("mb-elec", "modbus", "tcp", "gw-01", 24, "electricity", "schneider-iem3255"),
    LinePlan("mb-heat", "modbus", "tcp", "gw-01", 6, "heat", "aquametro-calec-st"),
    LinePlan("dlms", "dlms", "tcp", "gw-01", 6, "electricity", password="12345678", port_per_meter=True),
    LinePlan("iec", "iec62056_21", "tcp", "gw-02", 6, "electricity", password="777777"),
    LinePlan("merc", "mercury", "serial", "gw-02", 7, "electricity", password="111111"),
    LinePlan("mbus-cold", "mbus", "serial", "gw-02", 6, "cold_water"),
    LinePlan("mbus-hot", "mbus", "serial", "gw-02", 6, "hot_water"),
    LinePlan("mbus-heat", "mbus", "serial", "gw-02", 4, "heat"),
]

# A few faults so the abnormal-event list has something to show.
FAULTS: dict[str, dict[str, Any]] = {
    "mb-elec-003": {"silent": True},
    "mb-elec-007": {"reverse_step_after_s": 150, "reverse_step": 40.0},
    "mb-elec-011": {"crc_error_rate": 0.05},
    "dlms-002": {"tamper_after_s": 90},
    "merc-004": {"garbage_rate": 0.05},
    "iec-005": {"clock_jump_after_s": 60, "clock_jump_s": 600},
}

MEAN_LOAD = {"electricity": 0.5, "heat": 0.02, "cold_water": 0.012, "hot_water": 0.008,
             "mbus-heat": 0.4}  # house heat meters (ОДПУ): GJ/h, so 0.1 GJ steps move within the demo

# M-Bus meters whose telegrams take the shapes of real meters (drivers/mbus/simulator.py):
# variable-length text records, an undefined VIF the driver skips, answers spread over
# several telegrams with a strict FCB, energy in the extension tables or accumulated from
# positive contributions, and a clock flagged invalid (values stored at their read time).
MBUS_SHAPES: dict[str, dict[str, Any]] = {
    "mbus-cold-002": {"text_records": True, "unknown_vif": True},
    "mbus-cold-004": {"records_per_telegram": 2, "strict_fcb": True},
    "mbus-hot-003": {"time_invalid": True},
    "mbus-heat-001": {"energy_vif": "gj", "text_records": True},
    "mbus-heat-002": {"energy_vif": "kwh_accumulation", "unknown_vif": True},
    "mbus-heat-003": {"energy_vif": "mwh", "records_per_telegram": 4, "strict_fcb": True},
    "mbus-heat-004": {"time_invalid": True, "records_per_telegram": 5},
}


def keeps_profile(plan: LinePlan) -> bool:
    """Whether the line's meters keep a load profile the gateway reads from their memory, so
    their hourly charts fill from the first minute: electricity meters whose driver reads a
    profile (DLMS/СПОДЭС, Меркурий). The Modbus models keep none; the IEC 62056-21 meters'
    profile parameters are not publicly described (docs/drivers/)."""
    from askue.drivers.base import Capability, get_driver

    return plan.resource == "electricity" and Capability.PROFILE in get_driver(plan.protocol).capabilities


def _meter(plan: LinePlan, i: int) -> dict[str, Any]:
    mid = f"{plan.key}-{i:03d}"
    m: dict[str, Any] = {
        "id": mid,
        "serial": f"{zlib.crc32(plan.key.encode()) % 90 + 10}{i:06d}",
        "address": i if plan.protocol != "iec62056_21" else f"{i:03d}",
        "resource": plan.resource,
        "mean_power": MEAN_LOAD.get(plan.key, MEAN_LOAD[plan.resource]) * (0.5 + (i % 5) / 4),
        "history_days": 3,
        "tariffs": "two_zone" if plan.resource == "electricity" else "single",
    }
    if plan.model:
        m["model"] = plan.model
    if plan.password:
        m["password"] = plan.password
    if mid in FAULTS:
        m["faults"] = FAULTS[mid]
    if mid in MBUS_SHAPES:
        m["options"] = MBUS_SHAPES[mid]
    if mid == "mb-elec-019":
        m["clock_drift_s_per_day"] = 400.0
    return m


def _line_groups(plan: LinePlan) -> list[list[int]]:
    """Meter numbers per physical line: all on one, or one per line."""
    numbers = list(range(1, plan.count + 1))
    return [[n] for n in numbers] if plan.port_per_meter else [numbers]


def fleet_spec(ports: DemoPorts, tty_dir: Path) -> dict[str, Any]:
    lines = []
    port = ports.sim_base
    for plan in PLAN:
        for group in _line_groups(plan):
            line: dict[str, Any] = {"protocol": plan.protocol, "transport": plan.transport,
                                    "meters": [_meter(plan, i) for i in group]}
            if plan.transport == "tcp":
                line["port"] = port
                port += 1
            else:
                line["pty"] = str(tty_dir / plan.key)
            lines.append(line)
    return {"seed": 42, "host": "127.0.0.1", "lines": lines}


def tcp_ports(ports: DemoPorts) -> list[int]:
    n = sum(len(_line_groups(p)) for p in PLAN if p.transport == "tcp")
    return list(range(ports.sim_base, ports.sim_base + n))


def gateway_configs(ports: DemoPorts, tty_dir: Path, store_dir: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    port = ports.sim_base
    for plan in PLAN:
        gw = out.setdefault(plan.gateway, {
            "gateway": {"id": plan.gateway, "health_interval_s": 30},
            "broker": {"host": "127.0.0.1", "port": ports.mqtt},
            "store": {"path": str(store_dir / f"{plan.gateway}.db"), "synchronous": "NORMAL"},
            "metrics": {"port": 9108 + len(out)},
            "buses": [],
            "meters": [],
        })
        for group in _line_groups(plan):
            bus_id = f"bus-{plan.key}" + (f"-{group[0]:03d}" if plan.port_per_meter else "")
            if plan.transport == "tcp":
                gw["buses"].append({"id": bus_id, "type": "tcp", "host": "127.0.0.1", "port": port,
                                    "timeout_s": 1.5})
                port += 1
            else:
                gw["buses"].append({"id": bus_id, "type": "serial", "device": str(tty_dir / plan.key),
                                    "baudrate": 2400 if plan.protocol == "mbus" else 9600, "timeout_s": 1.0,
                                    "inter_frame_gap_s": 0.01})
            for i in group:
                gw["meters"].append(_gateway_meter(plan, i, bus_id))
    return out


def _gateway_meter(plan: LinePlan, i: int, bus_id: str) -> dict[str, Any]:
    m = _meter(plan, i)
    entry: dict[str, Any] = {
        "id": m["id"], "bus": bus_id, "driver": plan.protocol, "address": m["address"],
        "serial": m["serial"], "resource": plan.resource,
        "schedules": {"register": "60s", "instant": "30s" if plan.resource == "electricity" else None,
                      "interval": "30m", "events": "120s" if plan.protocol in ("dlms", "mercury") else None},
        "timeout_s": 1.0, "retries": 2, "backoff_max_s": 60,
    }
    if plan.model:
        entry["model"] = plan.model
    if plan.password:
        entry["password"] = plan.password
    return entry


def registry_rows() -> list[dict[str, Any]]:
    """One row per meter: organisation, house, account (flat) and meter, as a УК keeps them."""
    rnd = random.Random(7)
    rows: list[dict[str, Any]] = []
    houses: list[tuple[str, str, str, float, float]] = []
    for h in range(8):
        org = ORGS[h % 2]
        street = STREETS[h % len(STREETS)]
        houses.append((org[0], f"H{h + 1:02d}", f"г. Екатеринбург, {street}, д. {10 + h * 3}",
                       CITY_LAT + rnd.uniform(-0.02, 0.02), CITY_LON + rnd.uniform(-0.03, 0.03)))
    k = 0
    for plan in PLAN:
        for i in range(1, plan.count + 1):
            m = _meter(plan, i)
            org_code, house_code, address, lat, lon = houses[k % len(houses)]
            flat = 1 + k // len(houses)
            balance = plan.key == "mb-heat" and i <= 2  # house heat meters are ОДПУ
            rows.append({
                "org_code": org_code,
                "org_name": dict((o[0], o[1]) for o in ORGS)[org_code],
                "org_kind": dict((o[0], o[2]) for o in ORGS)[org_code],
                "house_code": house_code,
                "house_address": address,
                "house_lat": f"{lat:.6f}",
                "house_lon": f"{lon:.6f}",
                "account": "" if balance else f"{house_code}-{flat:03d}",
                "flat": "" if balance else str(flat),
                "subscriber": "" if balance else f"Абонент кв. {flat}",
                "meter_id": m["id"],
                "serial": m["serial"],
                "model": plan.model or plan.protocol,
                "resource": plan.resource,
                "digits": 6,
                "multiplier": 1,
                "tariff_zones": 2 if plan.resource == "electricity" else 1,
                "is_balance": "yes" if balance else "no",
                "installed_at": "2024-03-01",
                "verification_due": "2026-12-10" if i == 2 else "2032-03-01",
                "lat": f"{lat + rnd.uniform(-0.0003, 0.0003):.6f}" if k % 13 else "",
                "lon": f"{lon + rnd.uniform(-0.0003, 0.0003):.6f}" if k % 13 else "",
                "gateway_id": plan.gateway,
                "bus": f"bus-{plan.key}" + (f"-{i:03d}" if plan.port_per_meter else ""),
                "bus_address": str(m["address"]),
            })
            k += 1
    return rows


def write_world(base: Path, ports: DemoPorts) -> dict[str, Path]:
    """Write fleet.yaml, gateway-*.yaml and registry.csv under base; return their paths."""
    base.mkdir(parents=True, exist_ok=True)
    tty_dir, store_dir = base / "tty", base / "gateway-store"
    tty_dir.mkdir(exist_ok=True)
    store_dir.mkdir(exist_ok=True)
    paths = {"fleet": base / "fleet.yaml", "registry": base / "registry.csv"}
    paths["fleet"].write_text(yaml.safe_dump(fleet_spec(ports, tty_dir), allow_unicode=True, sort_keys=False))
    for gw, cfg in gateway_configs(ports, tty_dir, store_dir).items():
        p = base / f"{gw}.yaml"
        p.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False))
        paths[gw] = p
    rows = registry_rows()
    with paths["registry"].open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return paths
