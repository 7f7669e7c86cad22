"""no_contact: no session with the meter for `no_contact_s` (24 h). The event shows the
silence bucket (30 min, 2 h, 1 day, 2 days, 1 week, 2 weeks, more) and the last session
time. Decommissioned and replaced meters raise none."""
from __future__ import annotations

from datetime import datetime, timedelta

from askue.headend.vee.model import Clear, MeterFacts, Result
from askue.headend.vee.rules.common import Ctx, finding, iso

# (upper bound, code, Russian label) — the map legend uses the same buckets.
BUCKETS: tuple[tuple[timedelta | None, str, str], ...] = (
    (timedelta(minutes=30), "30min", "до 30 минут"),
    (timedelta(hours=2), "2h", "до 2 часов"),
    (timedelta(days=1), "1d", "до 1 суток"),
    (timedelta(days=2), "2d", "до 2 суток"),
    (timedelta(weeks=1), "1w", "до 1 недели"),
    (timedelta(weeks=2), "2w", "до 2 недель"),
    (None, "more", "более 2 недель"),
)


def bucket(silence: timedelta) -> tuple[str, str]:
    """(code, Russian label) of a silence; bounds are inclusive (exactly 2 h is "2h")."""
    for upper, code, label in BUCKETS:
        if upper is None or silence <= upper:
            return code, label
    raise AssertionError("unreachable")


def check_contact(meter: MeterFacts, last_session: datetime | None, ctx: Ctx) -> Result:
    res = Result()
    if meter.retired or last_session is None:
        return res
    silence = ctx.now - last_session
    key = f"no_contact:{meter.code}:"
    if silence.total_seconds() > ctx.thresholds.no_contact_s:
        code, label = bucket(silence)
        res.findings.append(finding("no_contact", meter, last_session, key + iso(last_session),
                                    last_session=last_session, silence_h=round(silence.total_seconds() / 3600, 1),
                                    bucket=code, bucket_ru=label))
    else:
        res.clears.append(Clear(key, meter.code, last_session))
    return res
