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


# Tables as ranges of codes: (first, last, quantity, unit, exponent of the first code); the
# exponent rises by one per code (E000 0nnn energy 10^(nnn-3) Wh is (0x00, 0x07, …, -3)).
Range = tuple[int, int, str, str, int]
# Durations: (first, last, quantity, units); the code's offset from `first` picks the unit.
Durations = tuple[int, int, str, tuple[tuple[int, str], ...]]

_PRIMARY: tuple[Range, ...] = (
    (0x00, 0x07, "energy", "Wh", -3), (0x08, 0x0F, "energy", "J", 0), (0x10, 0x17, "volume", "m3", -6),
    (0x18, 0x1F, "mass", "kg", -3), (0x28, 0x2F, "power", "W", -3), (0x30, 0x37, "power", "J/h", 0),
    (0x38, 0x3F, "volume_flow", "m3/h", -6), (0x40, 0x47, "volume_flow", "m3/min", -7),
    (0x48, 0x4F, "volume_flow", "m3/s", -9), (0x50, 0x57, "mass_flow", "kg/h", -3),
    (0x58, 0x5B, "flow_temperature", "°C", -3), (0x5C, 0x5F, "return_temperature", "°C", -3),
    (0x60, 0x63, "temperature_difference", "K", -3), (0x64, 0x67, "external_temperature", "°C", -3),
    (0x68, 0x6B, "pressure", "bar", -3),
)
_PRIMARY_DURATIONS: tuple[Durations, ...] = (
    (0x20, 0x23, "on_time", _DURATION_NN), (0x24, 0x27, "operating_time", _DURATION_NN),
    (0x70, 0x73, "averaging_duration", _DURATION_NN), (0x74, 0x77, "actuality_duration", _DURATION_NN),
)
_PRIMARY_NAMED = {
    0x6C: Meaning("date", kind=DATE), 0x6D: Meaning("datetime", kind=DATETIME), 0x6E: Meaning("hca_units"),
    0x78: Meaning("fabrication_number", kind=IDENT), 0x79: Meaning("enhanced_identification", kind=IDENT),
    0x7A: Meaning("bus_address", kind=IDENT),
}

_FB: tuple[Range, ...] = (
    (0x00, 0x01, "energy", "Wh", 5), (0x08, 0x09, "energy", "J", 8),  # 0.1/1 MWh, 0.1/1 GJ
    (0x10, 0x11, "volume", "m3", 2), (0x18, 0x19, "mass", "kg", 5),  # 100/1000 m3, 100/1000 t
    (0x21, 0x21, "volume", "ft3", -1), (0x22, 0x23, "volume", "US gal", -1),
    (0x24, 0x24, "volume_flow", "US gal/min", -3), (0x25, 0x25, "volume_flow", "US gal/min", 0),
    (0x26, 0x26, "volume_flow", "US gal/h", 0),
    (0x28, 0x29, "power", "W", 5), (0x30, 0x31, "power", "J/h", 8),  # 0.1/1 MW, 0.1/1 GJ/h
    (0x58, 0x5B, "flow_temperature", "°F", -3), (0x5C, 0x5F, "return_temperature", "°F", -3),
    (0x60, 0x63, "temperature_difference", "°F", -3), (0x64, 0x67, "external_temperature", "°F", -3),
    (0x70, 0x73, "temperature_limit", "°F", -3), (0x74, 0x77, "temperature_limit", "°C", -3),
    (0x78, 0x7F, "cumulated_max_power", "W", -3),
)

_FD: tuple[Range, ...] = (
    (0x00, 0x03, "credit", "currency", -3), (0x04, 0x07, "debit", "currency", -3),
    (0x40, 0x4F, "voltage", "V", -9), (0x50, 0x5F, "current", "A", -12),
)
_FD_DURATIONS: tuple[Durations, ...] = (
    (0x24, 0x27, "storage_interval", _DURATION_NN), (0x2C, 0x2F, "duration_since_readout", _DURATION_NN),
    (0x31, 0x33, "tariff_duration", _DURATION_NN[1:]), (0x34, 0x37, "tariff_period", _DURATION_NN),
    (0x68, 0x6B, "duration_since_cumulation", _DURATION_PP), (0x6C, 0x6F, "battery_operating_time", _DURATION_PP),
)
_FD_IDENT = {
    0x08: "access_number", 0x09: "medium", 0x0A: "manufacturer", 0x0B: "parameter_set",
    0x0C: "model_version", 0x0D: "hardware_version", 0x0E: "firmware_version", 0x0F: "software_version",
    0x10: "customer_location", 0x11: "customer", 0x12: "access_code_user", 0x13: "access_code_operator",
    0x14: "access_code_system_operator", 0x15: "access_code_developer", 0x16: "password", 0x17: "error_flags",
    0x18: "error_mask", 0x1A: "digital_output", 0x1B: "digital_input",
}
_FD_NUMBER = {
    0x1C: "baudrate", 0x1D: "response_delay", 0x1E: "retry", 0x20: "first_storage", 0x21: "last_storage",
    0x22: "storage_block_size", 0x3A: "dimensionless", 0x60: "reset_counter", 0x61: "cumulation_counter",
    0x62: "control_signal", 0x63: "day_of_week", 0x64: "week_number", 0x65: "day_change_time",
    0x66: "parameter_activation", 0x67: "supplier_information",
}
_FD_NAMED = {
    **{c: Meaning(q, kind=IDENT) for c, q in _FD_IDENT.items()}, **{c: Meaning(q) for c, q in _FD_NUMBER.items()},
    0x28: Meaning("storage_interval", "month"), 0x29: Meaning("storage_interval", "year"),
    0x30: Meaning("tariff_start", kind=DATETIME), 0x38: Meaning("tariff_period", "month"),
    0x39: Meaning("tariff_period", "year"), 0x70: Meaning("battery_change", kind=DATETIME),
}


def _lookup(code: int, ranges: tuple[Range, ...], durations: tuple[Durations, ...],
            named: dict[int, Meaning]) -> Meaning | None:
    c = code & 0x7F
    if c in named:
        return named[c]
    for first, last, quantity, unit, exponent in ranges:
        if first <= c <= last:
            return Meaning(quantity, unit, exponent + c - first)
    for first, last, quantity, units in durations:
        if first <= c <= last:
            scale, unit = units[c - first]
            return Meaning(quantity, unit, 0, NUMBER, scale)
    return None


def primary(vif: int) -> Meaning | None:
    """Primary VIF without the extension bit; None for reserved codes and the codes the
    record decoder handles itself (0x7B, 0x7C plain text, 0x7D, 0x7E any VIF, 0x7F
    manufacturer specific)."""
    return _lookup(vif, _PRIMARY, _PRIMARY_DURATIONS, _PRIMARY_NAMED)


def extension_fb(code: int) -> Meaning | None:
    """First extension table (VIF 0xFB): the code is the first VIFE without its extension bit."""
    return _lookup(code, _FB, (), {})


def extension_fd(code: int) -> Meaning | None:
    """Second extension table (VIF 0xFD): the code is the first VIFE without its extension bit."""
    return _lookup(code, _FD, _FD_DURATIONS, _FD_NAMED)


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
