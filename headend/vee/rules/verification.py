"""verification_overdue: the next verification (поверка) date has passed;
verification_due: it falls within `verification_warn_days` (a warning)."""
from __future__ import annotations

from datetime import datetime, time, timedelta

from askue.headend.vee.model import Clear, MeterFacts, Result
from askue.headend.vee.rules.common import Ctx, finding


def check_verification(meter: MeterFacts, ctx: Ctx) -> Result:
    res = Result()
    due = meter.verification_due
    if due is None or meter.retired:
        return res
    today = ctx.now.astimezone(ctx.tz).date()
    ts = datetime.combine(due, time(0), tzinfo=ctx.tz)
    # Events are dated by the due date (maybe ahead of now): clears reach every date.
    later = ctx.now + timedelta(days=3650)
    overdue_key, due_key = f"verification_overdue:{meter.code}:", f"verification_due:{meter.code}:"
    if today > due:  # valid through the due date itself
        res.clears.append(Clear(due_key, meter.code, later))
        res.findings.append(finding("verification_overdue", meter, ts,
                                    f"verification_overdue:{meter.code}:{due.isoformat()}",
                                    verification_due=due.isoformat(), days_overdue=(today - due).days))
    elif due - today <= timedelta(days=ctx.thresholds.verification_warn_days):
        res.clears.append(Clear(overdue_key, meter.code, later))
        res.findings.append(finding("verification_due", meter, ts,
                                    f"verification_due:{meter.code}:{due.isoformat()}",
                                    verification_due=due.isoformat(), days_left=(due - today).days))
    else:  # verified again: a new date far ahead
        res.clears += [Clear(overdue_key, meter.code, later), Clear(due_key, meter.code, later)]
    return res
