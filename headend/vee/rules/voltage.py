"""voltage: a phase voltage out of ±`voltage_tolerance` of nominal (ГОСТ 32144-2013
allows ±10 %); phase_loss: below `phase_loss_fraction` of nominal. One event per phase
and condition until a read back in range clears it."""
from __future__ import annotations

from askue.headend.vee.model import Clear, Mark, MeterFacts, MeterValue, Result, by_channel
from askue.headend.vee.rules.common import VOLTAGE_CHANNELS, Ctx, finding


def check(meter: MeterFacts, values: list[MeterValue], ctx: Ctx) -> Result:
    res = Result()
    th = ctx.thresholds
    u_n = meter.nominal_voltage
    lo, hi = u_n * (1 - th.voltage_tolerance), u_n * (1 + th.voltage_tolerance)
    loss = u_n * th.phase_loss_fraction
    for obis, series in by_channel(values, "instant").items():
        if obis not in VOLTAGE_CHANNELS:
            continue
        phase = VOLTAGE_CHANNELS.index(obis) + 1
        state: str | None = "unknown"  # the first in-range read clears what earlier batches raised
        for v in series:
            if not v.new:
                continue
            u = v.value
            now = "loss" if u < loss else "low" if u < lo else "high" if u > hi else None
            if now is None:
                if state is not None:  # only where an episode may end: few clears, same effect
                    res.clears.append(Clear(f"voltage:{meter.code}:{obis}:", meter.code, v.ts))
                    res.clears.append(Clear(f"phase_loss:{meter.code}:{obis}", meter.code, v.ts))
            else:
                res.marks.append(Mark(meter.code, obis, v.ts, "phase_loss" if now == "loss" else f"voltage_{now}"))
                if now != state:
                    if now == "loss":
                        res.findings.append(finding("phase_loss", meter, v.ts, f"phase_loss:{meter.code}:{obis}",
                                                    obis=obis, phase=phase, voltage=u, nominal=u_n))
                    else:
                        res.findings.append(finding("voltage", meter, v.ts, f"voltage:{meter.code}:{obis}:{now}",
                                                    obis=obis, phase=phase, voltage=u, nominal=u_n,
                                                    low=round(lo, 2), high=round(hi, 2), direction=now))
            state = now
    return res
