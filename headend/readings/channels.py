"""The registers an operator reads off a meter's display: A+ per tariff zone (the total
first) for electricity, the volume or energy register for the other resources. The
entry page, the meter table and the account page show these, in this order."""
from __future__ import annotations

from askue.headend.vee.rules.common import MAIN_REGISTER


def display_channels(resource: str | None, tariff_zones: int = 1) -> list[str]:
    if resource in (None, "electricity", "unknown"):
        zones = [0] + (list(range(1, tariff_zones + 1)) if tariff_zones > 1 else [])
        return [f"1.0.1.8.{z}.255" for z in zones]
    return [MAIN_REGISTER[resource]]


def main_channel(resource: str | None) -> str:
    """The register a resource is billed on (A+ total for electricity)."""
    return MAIN_REGISTER.get(resource or "electricity", MAIN_REGISTER["electricity"])
