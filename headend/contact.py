"""A meter's contact status: the silence bucket of the map legend and the no-contact
event (VEE's buckets), its colour, and what "without contact" means for the menu badge
and the meter table's filter (silent longer than VEE's no-contact threshold, or never heard)."""
from __future__ import annotations

from datetime import datetime, timedelta

from askue.headend.vee.rules.no_contact import BUCKETS
from askue.headend.vee.thresholds import Thresholds

# Map legend, in the order operators know it; "disconnected" = never heard or silent > 2 weeks.
MAP_BUCKETS: tuple[tuple[str, str], ...] = (
    ("disconnected", "#616161"), ("30min", "#1b9e3e"), ("2h", "#7cb342"), ("1d", "#c0ca33"),
    ("2d", "#fbc02d"), ("1w", "#fb8c00"), ("2w", "#e64a19"),
)
BUCKET_COLOR = dict(MAP_BUCKETS)
SILENT_AFTER = timedelta(seconds=Thresholds().no_contact_s)


def contact_bucket(last_contact: datetime | None, now: datetime) -> str:
    if last_contact is None:
        return "disconnected"
    silence = now - last_contact
    for upper, code, _ in BUCKETS:
        if upper is not None and silence <= upper:
            return code
    return "disconnected"


def silent(last_contact: datetime | None, now: datetime) -> bool:
    """Without contact: never heard, or silent longer than the no-contact threshold."""
    return last_contact is None or now - last_contact > SILENT_AFTER
