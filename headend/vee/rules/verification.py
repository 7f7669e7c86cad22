"""verification_overdue: the next verification (поверка) date has passed;
verification_due: it falls within `verification_warn_days` (a warning)."""
from __future__ import annotations

from datetime import datetime, time, timedelta

from askue.headend.vee.model import MeterFacts, Result
from askue.headend.vee.rules.common import Ctx, finding


def check_verification(meter: MeterFacts, ctx: Ctx) -> Result:
    res = Result()
    due = meter.verification_due
    if due is None or meter.retired:
        return res
    today = ctx.now.astimezone(ctx.tz).date()
    ts = datetime.combine(due, time(0), tzinfo=ctx.tz)
    if today > due:  # valid through the due date itself
        res.findings.append(finding("verification_overdue", meter, ts,
                                    f"verification_overdue:{meter.meter_id}:{due.isoformat()}",
                                    verification_due=due.isoformat(), days_overdue=(today - due).days))
    elif due - today <= timedelta(days=ctx.thresholds.verification_warn_days):
        res.findings.append(finding("verification_due", meter, ts,
                                    f"verification_due:{meter.meter_id}:{due.isoformat()}",
                                    verification_due=due.isoformat(), days_left=(due - today).days))
    return res
