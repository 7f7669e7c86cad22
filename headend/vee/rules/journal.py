"""Journal entries that are abnormal situations besides tamper (tamper.py): power loss,
phase loss, the meter's clock set, self-diagnostics faults.

Every driver that reads journals sends their entries as СПОДЭС journals
`0.0.99.98.N.255` with the event code as the value (ГОСТ Р 58940-2020 / СТО 34.01-5.1-006
annex Д, the tables of `askue.drivers.dlms.cosem`); Меркурий's own journals are translated
into the same codes by its driver (docs/drivers/mercury.md).

- `power_loss`: power journal (2) code 1 (power off) or 29 (complete loss of supply), or
  voltage journal (0) code 27 (voltage interruption); one event per outage, cleared by
  code 2 (power on) resp. 28 (voltage restored).
- `phase_loss`: voltage journal codes 1/3/5 (phase A/B/C lost), cleared by 2/4/6. The
  condition is the voltage rule's (`phase_loss:<meter>:<phase voltage OBIS>`), so a phase
  seen lost both in the instantaneous voltage and in the journal is one event.
- `clock_set`: programming journal (3) code 3, the clock set (stepped). Code 68, a
  correction within what the meter allows (Меркурий ±4 min once a day), is routine and no
  event.
- `meter_fault`: self-diagnostics journal (7) codes 2 (measuring unit), 5 (real-time
  clock), 11 (memory).
"""
from __future__ import annotations

from datetime import datetime

from askue.headend.vee.model import Clear, MeterFacts, MeterValue, Result
from askue.headend.vee.rules.common import VOLTAGE_CHANNELS, Ctx, finding, iso

VOLTAGE_JOURNAL = "0.0.99.98.0.255"
POWER_JOURNAL = "0.0.99.98.2.255"
PROGRAMMING_JOURNAL = "0.0.99.98.3.255"
DIAGNOSTICS_JOURNAL = "0.0.99.98.7.255"
JOURNALS = (VOLTAGE_JOURNAL, POWER_JOURNAL, PROGRAMMING_JOURNAL, DIAGNOSTICS_JOURNAL)

# (journal, code) -> what it starts or ends
POWER_OFF = {(POWER_JOURNAL, 1): "power off", (POWER_JOURNAL, 29): "complete loss of supply",
             (VOLTAGE_JOURNAL, 27): "voltage interruption"}
POWER_ON = {(POWER_JOURNAL, 2), (VOLTAGE_JOURNAL, 28)}
PHASE_LOST = {1: 1, 3: 2, 5: 3}  # voltage journal code -> phase
PHASE_RESTORED = {2: 1, 4: 2, 6: 3}
TIME_SET = 3
FAULTS = {2: "measuring unit error", 5: "real-time clock error", 11: "memory error"}


def _code(v: MeterValue) -> int | None:
    code = int(v.value)
    return code if code == v.value else None


def check(meter: MeterFacts, values: list[MeterValue], ctx: Ctx) -> Result:
    res = Result()
    entries = sorted(((v, c) for v in values if v.kind == "event" and v.obis in JOURNALS
                      and (c := _code(v)) is not None), key=lambda e: e[0].ts)
    for v, code in entries:
        if not v.new:
            continue
        key = (v.obis, code)
        if key in POWER_OFF:
            on = _next(entries, v.ts, lambda o, c: (o, c) in POWER_ON)
            res.findings.append(finding(
                "power_loss", meter, v.ts, f"power_loss:{meter.code}:{iso(v.ts)}", obis=v.obis, code=code,
                meaning=POWER_OFF[key], off_at=v.ts, **({"on_at": on} if on else {})))
        elif key in POWER_ON:
            res.clears.append(Clear(f"power_loss:{meter.code}:", meter.code, v.ts))
        elif v.obis == VOLTAGE_JOURNAL and code in PHASE_LOST:
            phase = PHASE_LOST[code]
            back = _next(entries, v.ts, lambda o, c, p=phase: o == VOLTAGE_JOURNAL and PHASE_RESTORED.get(c) == p)
            res.findings.append(finding(
                "phase_loss", meter, v.ts, f"phase_loss:{meter.code}:{VOLTAGE_CHANNELS[phase - 1]}",
                obis=VOLTAGE_CHANNELS[phase - 1], phase=phase, journal_code=code, lost_at=v.ts,
                **({"restored_at": back} if back else {})))
        elif v.obis == VOLTAGE_JOURNAL and code in PHASE_RESTORED:
            obis = VOLTAGE_CHANNELS[PHASE_RESTORED[code] - 1]
            res.clears.append(Clear(f"phase_loss:{meter.code}:{obis}", meter.code, v.ts))
        elif v.obis == PROGRAMMING_JOURNAL and code == TIME_SET:
            res.findings.append(finding("clock_set", meter, v.ts, f"clock_set:{meter.code}:{iso(v.ts)}",
                                        obis=v.obis, code=code, set_to=v.ts))
        elif v.obis == DIAGNOSTICS_JOURNAL and code in FAULTS:
            res.findings.append(finding("meter_fault", meter, v.ts, f"meter_fault:{meter.code}:{code}:{iso(v.ts)}",
                                        obis=v.obis, code=code, meaning=FAULTS[code], at=v.ts))
    return res


def _next(entries: list[tuple[MeterValue, int]], after: datetime, match) -> datetime | None:
    """When the condition that started at `after` ended, if the journal already says so."""
    return next((v.ts for v, c in entries if v.ts > after and match(v.obis, c)), None)
