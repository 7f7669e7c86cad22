"""tamper: meter journal entries of external influence (СПОДЭС 0.0.99.98.4.255) or
unauthorised access (0.0.99.98.6.255). The value of a journal entry is its event code;
which codes raise is configurable (`tamper_codes`), defaults in thresholds.py."""
from __future__ import annotations

from askue.headend.vee.model import MeterFacts, MeterValue, Result
from askue.headend.vee.rules.common import Ctx, finding, iso

JOURNALS = {
    "0.0.99.98.4.255": ("журнал внешних воздействий", "external influence journal"),
    "0.0.99.98.6.255": ("журнал несанкционированного доступа", "access control journal"),
}
# The external-influence and access-control codes (ГОСТ Р 58940-2020 annex Д, as
# askue.drivers.dlms.cosem).
CODE_NAMES = {
    ("0.0.99.98.4.255", 1): "magnetic field: start",
    ("0.0.99.98.4.255", 2): "magnetic field: end",
    ("0.0.99.98.4.255", 3): "terminal cover opened",
    ("0.0.99.98.4.255", 4): "meter case opened",
    ("0.0.99.98.4.255", 5): "external seal sensor tripped",
    ("0.0.99.98.4.255", 6): "RF field: start",
    ("0.0.99.98.4.255", 7): "RF field: end",
    ("0.0.99.98.6.255", 1): "unauthorised access attempt",
    ("0.0.99.98.6.255", 2): "protocol violation",
    ("0.0.99.98.6.255", 3): "locked after too many wrong passwords",
    ("0.0.99.98.6.255", 4): "firmware verification failed",
}


def check(meter: MeterFacts, values: list[MeterValue], ctx: Ctx) -> Result:
    res = Result()
    codes = ctx.thresholds.tamper_codes
    for v in values:
        if v.kind != "event" or not v.new or v.obis not in codes:
            continue
        code = int(v.value)
        if code != v.value or code not in codes[v.obis]:
            continue
        res.findings.append(finding(
            "tamper", meter, v.ts, f"tamper:{meter.code}:{v.obis}:{iso(v.ts)}:{code}", obis=v.obis,
            journal=JOURNALS.get(v.obis, (v.obis, v.obis))[1], code=code,
            meaning=CODE_NAMES.get((v.obis, code), "see the meter's journal code table")))
    return res
