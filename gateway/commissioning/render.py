"""What the commissioning commands print: plain-text tables for people, JSON for machines,
and gateway config lines (YAML) to paste."""
from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import yaml

from askue.drivers.base import Reading
from askue.gateway.commissioning.probe import ProbeResult

QUANTITY = {"1": "A+", "2": "A-", "3": "R+", "4": "R-"}
ARCHIVE_COLUMNS = ("1.0.1.8.0.255", "1.0.1.8.1.255", "1.0.1.8.2.255", "1.0.1.8.3.255", "1.0.1.8.4.255",
                   "1.0.2.8.0.255", "1.0.3.8.0.255", "1.0.4.8.0.255")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _local(t: datetime | None, tz: timezone | None = None) -> str:
    if t is None:
        return "-"
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %z")


def _value(r: Reading) -> str:
    return f"{r.value:.6g}" if abs(r.value) < 1e6 else f"{r.value:.3f}"


def _name(obis: str) -> str:
    p = obis.split(".")
    if len(p) == 6 and p[0] == "1" and p[3] in ("8", "29") and p[2] in QUANTITY:
        tariff = "total" if p[4] == "0" else f"T{p[4]}"
        return f"{QUANTITY[p[2]]} {tariff}" if p[3] == "8" else f"{QUANTITY[p[2]]} interval"
    return ""


def probe_text(res: ProbeResult) -> str:
    out = [f"bus      {res.bus.describe()}", f"meter    {res.spec.driver} address {res.spec.address}"]
    ident = res.identity
    if ident is not None:
        out.append(f"serial   {ident.serial}")
        if ident.model:
            out.append(f"model    {ident.model}")
        if ident.firmware:
            out.append(f"firmware {ident.firmware}")
        if ident.ct_ratio is not None or ident.vt_ratio is not None:
            out.append(f"ratios   CT {ident.ct_ratio or '-'}  VT {ident.vt_ratio or '-'}")
    if res.meter_time is not None:
        drift = res.drift_s or 0.0
        note = "  (more than 30 s: set the clock)" if abs(drift) > 30 else ""
        out.append(f"clock    {_local(res.meter_time)}  drift {drift:+.1f} s{note}")
    if res.registers:
        stamp = res.registers[0].meter_time
        out += ["", f"Registers (meter time {_local(stamp)})"]
        out.append(table(["obis", "name", "value", "unit"],
                         [(r.obis, _name(r.obis), _value(r), r.unit) for r in res.registers]))
    if res.instant:
        out += ["", "Instant values"]
        out.append(table(["obis", "value", "unit"], [(r.obis, _value(r), r.unit) for r in res.instant]))
    if res.profile:
        channels = sorted({r.obis for r in res.profile})
        by_time: dict[datetime, dict[str, Reading]] = {}
        for r in res.profile:
            if r.meter_time is not None:
                by_time.setdefault(r.meter_time, {})[r.obis] = r
        unit = res.profile[0].unit
        out += ["", f"Load profile, last day ({len(by_time)} intervals, {unit}, interval end)"]
        out.append(table(["end"] + [_name(c) or c for c in channels],
                         [[_local(t)] + [_value(v[c]) if c in v else "" for c in channels]
                          for t, v in sorted(by_time.items())]))
    if res.archives:
        # One row per boundary; the totals and A+ per tariff (the rest is in --json).
        shown = [o for o in ARCHIVE_COLUMNS if any(r.obis == o for r in res.archives)]
        rows: dict[tuple[str, datetime], dict[str, Reading]] = {}
        for r in res.archives:
            if r.meter_time is not None:
                rows.setdefault((r.archive or "", r.meter_time), {})[r.obis] = r
        out += ["", "Meter archives: registers at the start of the day / month (kWh, kvarh)"]
        out.append(table(["archive", "boundary"] + [_name(o) for o in shown],
                         [[a, _local(t)] + [_value(v[o]) if o in v else "" for o in shown]
                          for (a, t), v in sorted(rows.items())]))
    if res.skipped:
        out += ["", "Not read"]
        out += [f"  {step}: {why}" for step, why in res.skipped.items()]
    out.append("")
    if res.failure:
        out.append(f"FAILED (exit {int(res.failure.code)}): {res.failure.message}")
    else:
        out.append(f"OK in {res.elapsed_s:.1f} s")
    return "\n".join(out)


def _reading(r: Reading) -> dict[str, Any]:
    d: dict[str, Any] = {"obis": r.obis, "kind": str(r.kind), "value": r.value, "unit": r.unit,
                         "meter_time": r.meter_time.isoformat() if r.meter_time else None}
    if r.period_s:
        d["period_s"] = r.period_s
    if r.archive:
        d["archive"] = r.archive
    return d


def probe_json(res: ProbeResult) -> str:
    ident = res.identity
    doc = {
        "ok": res.failure is None,
        "exit_code": int(res.exit_code),
        "error": res.failure.message if res.failure else None,
        "bus": res.bus.describe(),
        "driver": res.spec.driver,
        "address": res.spec.address,
        "identity": None if ident is None else {"serial": ident.serial, "model": ident.model,
                                                "firmware": ident.firmware, "ct_ratio": ident.ct_ratio,
                                                "vt_ratio": ident.vt_ratio},
        "meter_time": res.meter_time.isoformat() if res.meter_time else None,
        "clock_drift_s": res.drift_s,
        "registers": [_reading(r) for r in res.registers],
        "instant": [_reading(r) for r in res.instant],
        "profile": [_reading(r) for r in res.profile],
        "archives": [_reading(r) for r in res.archives],
        "not_read": res.skipped,
        "elapsed_s": res.elapsed_s,
    }
    return json.dumps(doc, ensure_ascii=False, indent=2)


def config_yaml(bus: dict[str, Any], meters: list[dict[str, Any]]) -> str:
    """`buses:` and `meters:` sections for the gateway config (gateway/config.py)."""
    return yaml.safe_dump({"buses": [bus], "meters": meters}, sort_keys=False, allow_unicode=True)


def scan_config_yaml(bus: dict[str, Any], meters: list[tuple[dict[str, Any], str | None, bool]]) -> str:
    """config_yaml with a comment above each meter that needs the engineer's attention; a meter
    the gateway would refuse as it is (a shared address) is printed commented out."""
    out = [yaml.safe_dump({"buses": [bus]}, sort_keys=False, allow_unicode=True).rstrip(), "meters:"]
    if not any(enabled for _e, _n, enabled in meters):
        out[-1] = "meters: []"
    for entry, note, enabled in meters:
        if note:
            out.append(f"  # {note}")
        item = yaml.safe_dump([entry], sort_keys=False, allow_unicode=True).rstrip()
        out += [("  " if enabled else "  # ") + line for line in item.splitlines()]
    return "\n".join(out) + "\n"


def scan_text(res: Any, config: str) -> str:
    out = [f"bus     {res.bus.describe()}", f"driver  {res.driver}", ""]
    if res.found:
        rows = [(f.address, f.secondary or "", f.serial or "?", f.model or "", f.note or "") for f in res.found]
        headers = ["address", "secondary address", "serial", "model", "note"]
        if not any(f.secondary for f in res.found):
            headers.pop(1)
            rows = [(a, s, m, n) for a, _sec, s, m, n in rows]
        out += [table(headers, rows), ""]
    if res.garbled:
        out.append("Damaged answers")
        out += [f"  {addr}: {what}" for addr, what in res.garbled[:10]]
        if len(res.garbled) > 10:
            out.append(f"  … and {len(res.garbled) - 10} more")
        out.append("")
    if any(f.identified for f in res.found):
        out += ["Gateway config (paste into the gateway's YAML, then set ids and schedules):", "", config]
    verdict = "OK" if int(res.exit_code) == 0 else f"FAILED (exit {int(res.exit_code)})"
    out.append(f"{verdict}: {res.summary()}")
    return "\n".join(out)


def scan_json(res: Any, config: str) -> str:
    doc = {
        "ok": int(res.exit_code) == 0,
        "exit_code": int(res.exit_code),
        "summary": res.summary(),
        "bus": res.bus.describe(),
        "driver": res.driver,
        "tried": res.tried,
        "elapsed_s": res.elapsed_s,
        "found": [{"address": f.address, "serial": f.serial, "model": f.model, "note": f.note,
                   "secondary_address": f.secondary, "identified": f.identified} for f in res.found],
        "damaged": [{"address": a, "what": w} for a, w in res.garbled],
        "config": config,
    }
    return json.dumps(doc, ensure_ascii=False, indent=2)
