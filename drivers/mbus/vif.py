"""What M-Bus value information codes mean (EN 13757-3 VIF/VIFE tables), as data (I/O-free).

Three code tables give a record its quantity, unit and decimal exponent:
- the primary VIF (the VIF byte without its extension bit);
- the first extension table, selected by VIF 0xFB: the true VIF is the first VIFE (MWh, GJ,
  100 m³ and tonne ranges, °F temperatures, MW and GJ/h power);
- the second extension table, selected by VIF 0xFD: the true VIF is the first VIFE
  (identification, versions, error flags, voltage and current, durations…).
Any further VIFE is "combinable": it qualifies the value (per hour, accumulation of positive
contributions only, limit values, dates of events) or corrects it (multiplier 10^(nnn-6),
additive constant). The decoder (`records.py`) applies the corrections; the other meanings
travel with the record as names, and the OBIS mapping decides which it accepts.

Numbers are decoded as raw × scale × 10^exponent in `unit`; durations are converted to
seconds (`scale`), except months and years, which keep their own unit.
"""
from __future__ import annotations

from dataclasses import dataclass

NUMBER, DATE, DATETIME, IDENT = "number", "date", "datetime", "ident"

_DURATION_NN = ((1, "s"), (60, "s"), (3600, "s"), (86400, "s"))  # seconds, minutes, hours, days
_DURATION_PP = ((3600, "s"), (86400, "s"), (1, "month"), (1, "year"))  # hours, days, months, years


@dataclass(frozen=True, slots=True)
class Meaning:
    quantity: str  # snake_case name of what the value is
    unit: str = ""  # unit of the decoded value ("" for counts, identifiers, flags)
    exponent: int = 0  # decoded = raw × scale × 10^exponent
    kind: str = NUMBER  # NUMBER | DATE | DATETIME | IDENT (a number that is a label, never scaled)
    scale: int = 1


def _duration(quantity: str, nn: int, table=_DURATION_NN) -> Meaning:
    scale, unit = table[nn]
    return Meaning(quantity, unit, 0, NUMBER, scale)


def primary(vif: int) -> Meaning | None:
    """Primary VIF without the extension bit; None for reserved codes and the codes the
    record decoder handles itself (0x7B, 0x7C plain text, 0x7D, 0x7E any VIF, 0x7F
    manufacturer specific)."""
    v = vif & 0x7F
    n = v & 0x07
    if v <= 0x07:
        return Meaning("energy", "Wh", n - 3)
    if v <= 0x0F:
        return Meaning("energy", "J", n)
    if v <= 0x17:
        return Meaning("volume", "m3", n - 6)
    if v <= 0x1F:
        return Meaning("mass", "kg", n - 3)
    if v <= 0x23:
        return _duration("on_time", v & 0x03)
    if v <= 0x27:
        return _duration("operating_time", v & 0x03)
    if v <= 0x2F:
        return Meaning("power", "W", n - 3)
    if v <= 0x37:
        return Meaning("power", "J/h", n)
    if v <= 0x3F:
        return Meaning("volume_flow", "m3/h", n - 6)
    if v <= 0x47:
        return Meaning("volume_flow", "m3/min", n - 7)
    if v <= 0x4F:
        return Meaning("volume_flow", "m3/s", n - 9)
    if v <= 0x57:
        return Meaning("mass_flow", "kg/h", n - 3)
    nn = v & 0x03
    if v <= 0x5B:
        return Meaning("flow_temperature", "°C", nn - 3)
    if v <= 0x5F:
        return Meaning("return_temperature", "°C", nn - 3)
    if v <= 0x63:
        return Meaning("temperature_difference", "K", nn - 3)
    if v <= 0x67:
        return Meaning("external_temperature", "°C", nn - 3)
    if v <= 0x6B:
        return Meaning("pressure", "bar", nn - 3)
    if v == 0x6C:
        return Meaning("date", kind=DATE)
    if v == 0x6D:
        return Meaning("datetime", kind=DATETIME)
    if v == 0x6E:
        return Meaning("hca_units")
    if v <= 0x6F:
        return None
    if v <= 0x73:
        return _duration("averaging_duration", nn)
    if v <= 0x77:
        return _duration("actuality_duration", nn)
    return {0x78: Meaning("fabrication_number", kind=IDENT), 0x79: Meaning("enhanced_identification", kind=IDENT),
            0x7A: Meaning("bus_address", kind=IDENT)}.get(v)


def extension_fb(code: int) -> Meaning | None:
    """First extension table (VIF 0xFB): the code is the first VIFE without its extension bit."""
    c = code & 0x7F
    n = c & 0x01
    nn = c & 0x03
    if c <= 0x01:
        return Meaning("energy", "Wh", n + 5)  # 10^(n-1) MWh
    if 0x08 <= c <= 0x09:
        return Meaning("energy", "J", n + 8)  # 10^(n-1) GJ
    if 0x10 <= c <= 0x11:
        return Meaning("volume", "m3", n + 2)
    if 0x18 <= c <= 0x19:
        return Meaning("mass", "kg", n + 5)  # 10^(n+2) t
    if c == 0x21:
        return Meaning("volume", "ft3", -1)
    if 0x22 <= c <= 0x23:
        return Meaning("volume", "US gal", n - 1)
    if c == 0x24:
        return Meaning("volume_flow", "US gal/min", -3)
    if c == 0x25:
        return Meaning("volume_flow", "US gal/min")
    if c == 0x26:
        return Meaning("volume_flow", "US gal/h")
    if 0x28 <= c <= 0x29:
        return Meaning("power", "W", n + 5)  # 10^(n-1) MW
    if 0x30 <= c <= 0x31:
        return Meaning("power", "J/h", n + 8)  # 10^(n-1) GJ/h
    if 0x58 <= c <= 0x5B:
        return Meaning("flow_temperature", "°F", nn - 3)
    if 0x5C <= c <= 0x5F:
        return Meaning("return_temperature", "°F", nn - 3)
    if 0x60 <= c <= 0x63:
        return Meaning("temperature_difference", "°F", nn - 3)
    if 0x64 <= c <= 0x67:
        return Meaning("external_temperature", "°F", nn - 3)
    if 0x70 <= c <= 0x73:
        return Meaning("temperature_limit", "°F", nn - 3)
    if 0x74 <= c <= 0x77:
        return Meaning("temperature_limit", "°C", nn - 3)
    if 0x78 <= c <= 0x7F:
        return Meaning("cumulated_max_power", "W", (c & 0x07) - 3)
    return None


_FD_NAMED = {
    0x08: "access_number", 0x09: "medium", 0x0A: "manufacturer", 0x0B: "parameter_set",
    0x0C: "model_version", 0x0D: "hardware_version", 0x0E: "firmware_version", 0x0F: "software_version",
    0x10: "customer_location", 0x11: "customer", 0x12: "access_code_user", 0x13: "access_code_operator",
    0x14: "access_code_system_operator", 0x15: "access_code_developer", 0x16: "password", 0x17: "error_flags",
    0x18: "error_mask", 0x1A: "digital_output", 0x1B: "digital_input", 0x1C: "baudrate",
    0x1D: "response_delay", 0x1E: "retry", 0x20: "first_storage", 0x21: "last_storage",
    0x22: "storage_block_size", 0x3A: "dimensionless", 0x60: "reset_counter", 0x61: "cumulation_counter",
    0x62: "control_signal", 0x63: "day_of_week", 0x64: "week_number", 0x65: "day_change_time",
    0x66: "parameter_activation", 0x67: "supplier_information",
}


def extension_fd(code: int) -> Meaning | None:
    """Second extension table (VIF 0xFD): the code is the first VIFE without its extension bit."""
    c = code & 0x7F
    nn = c & 0x03
    if c <= 0x03:
        return Meaning("credit", "currency", nn - 3)
    if c <= 0x07:
        return Meaning("debit", "currency", nn - 3)
    if c in _FD_NAMED:
        return Meaning(_FD_NAMED[c], kind=IDENT if c <= 0x1B else NUMBER)
    if 0x24 <= c <= 0x27:
        return _duration("storage_interval", nn)
    if c == 0x28:
        return Meaning("storage_interval", "month")
    if c == 0x29:
        return Meaning("storage_interval", "year")
    if 0x2C <= c <= 0x2F:
        return _duration("duration_since_readout", nn)
    if c == 0x30:
        return Meaning("tariff_start", kind=DATETIME)
    if 0x31 <= c <= 0x33:
        return _duration("tariff_duration", nn)
    if 0x34 <= c <= 0x37:
        return _duration("tariff_period", nn)
    if c == 0x38:
        return Meaning("tariff_period", "month")
    if c == 0x39:
        return Meaning("tariff_period", "year")
    if 0x40 <= c <= 0x4F:
        return Meaning("voltage", "V", (c & 0x0F) - 9)
    if 0x50 <= c <= 0x5F:
        return Meaning("current", "A", (c & 0x0F) - 12)
    if 0x68 <= c <= 0x6B:
        return _duration("duration_since_cumulation", nn, _DURATION_PP)
    if 0x6C <= c <= 0x6F:
        return _duration("battery_operating_time", nn, _DURATION_PP)
    if c == 0x70:
        return Meaning("battery_change", kind=DATETIME)
    return None


# Combinable (orthogonal) VIFE codes, without the extension bit. Multiplicative and additive
# corrections (0x70-0x7B, 0x7D) are applied by the decoder and have no name here.
_COMBINABLE = {
    0x12: "average", 0x13: "inverse_compact_profile", 0x14: "relative_deviation",
    0x1D: "standard_conform", 0x1E: "compact_profile_with_register", 0x1F: "compact_profile",
    0x20: "per_second", 0x21: "per_minute", 0x22: "per_hour", 0x23: "per_day", 0x24: "per_week",
    0x25: "per_month", 0x26: "per_year", 0x27: "per_revolution", 0x28: "per_input_pulse",
    0x29: "per_input_pulse", 0x2A: "per_output_pulse", 0x2B: "per_output_pulse", 0x2C: "per_litre",
    0x2D: "per_m3", 0x2E: "per_kg", 0x2F: "per_kelvin", 0x30: "per_kwh", 0x31: "per_gj", 0x32: "per_kw",
    0x33: "per_kelvin_litre", 0x34: "per_volt", 0x35: "per_ampere", 0x36: "times_s", 0x37: "times_s_per_v",
    0x38: "times_s_per_a", 0x39: "start_date_of", 0x3A: "uncorrected", 0x3B: "accumulation_positive",
    0x3C: "accumulation_negative", 0x3D: "non_metric", 0x3E: "base_conditions", 0x3F: "obis_declaration",
    0x7E: "future_value", 0x7F: "manufacturer_specific",
}
# Combinable codes after which the value is a date (or date and time) of an event.
DATE_OF = frozenset({"start_date_of", "limit_exceed_date"})


def combinable(code: int) -> str:
    """Name of a combinable VIFE code (extension bit ignored)."""
    c = code & 0x7F
    if c in _COMBINABLE:
        return _COMBINABLE[c]
    if c <= 0x1C:
        return "record_error"  # EN 13757-3 error codes (no data, overflow, data error…)
    if 0x40 <= c <= 0x4F:
        if c & 0x02:
            return "limit_exceed_date"  # E100 uf1b: date (/time) of begin/end of first/last exceed
        return "limit_exceed_count" if c & 0x01 else "limit_value"
    if 0x50 <= c <= 0x5F:
        return "limit_exceed_duration"
    if 0x60 <= c <= 0x67:
        return "duration_of"
    if 0x68 <= c <= 0x6F:
        return "limit_exceed_date" if c & 0x02 else "limit_exceed_value"
    if c == 0x7C:
        return "extended"
    return f"reserved_{c:02x}"


def correction(code: int) -> tuple[str, int] | None:
    """("mul", e) or ("add", e) for a correction VIFE, None for other codes: E111 0nnn
    multiplies by 10^(nnn-6), E111 10nn adds 10^(nn-3) units of the VIF, E111 1101 multiplies
    by 10^3."""
    c = code & 0x7F
    if 0x70 <= c <= 0x77:
        return "mul", (c & 0x07) - 6
    if 0x78 <= c <= 0x7B:
        return "add", (c & 0x03) - 3
    if c == 0x7D:
        return "mul", 3
    return None
