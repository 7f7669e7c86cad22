"""house_imbalance: the balance (ОДПУ) meter's consumption versus the sum of the house's
individual meters over a period differs by more than `imbalance_tolerance` of the
balance consumption."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from askue.headend.vee.model import MeterFacts, Result
from askue.headend.vee.rules.common import Ctx, finding, iso


def check_house(house: str, balance: MeterFacts, balance_consumption: float,
                flats: Mapping[str, float], period: tuple[datetime, datetime], ctx: Ctx) -> Result:
    """`flats`: individual meter id -> consumption over the same period (× multiplier already)."""
    res = Result()
    th = ctx.thresholds
    if balance_consumption < th.imbalance_floor:
        return res
    total = sum(flats.values())
    diff = balance_consumption - total
    share = diff / balance_consumption
    if abs(share) > th.imbalance_tolerance:
        res.findings.append(finding(
            "house_imbalance", balance, period[1],
            f"house_imbalance:{house}:{balance.resource}:{iso(period[0])}:{iso(period[1])}",
            house=house, period_start=period[0], period_end=period[1], balance=round(balance_consumption, 6),
            flats_sum=round(total, 6), flats=len(flats), imbalance=round(diff, 6),
            imbalance_pct=round(100 * share, 2), tolerance_pct=round(100 * th.imbalance_tolerance, 2)))
    return res
