"""Thresholds per resource, meter model and organisation.

Resolution order (later wins): built-in defaults → resource → model → organisation →
organisation+resource. A YAML file (configs/vee.yaml) or the `vee_thresholds` table
gives the overrides; an unknown key or a wrong type is a `ThresholdError` saying where.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from askue.headend.vee.model import MeterFacts


class ThresholdError(ValueError):
    """A threshold override that cannot be used: the message names the place and the key."""


@dataclass(frozen=True)
class Thresholds:
    # reverse_reading
    reverse_tolerance: float = 0.0  # a drop no larger than this is jitter of the last digit
    rollover_max_share: float = 0.1  # a wrap is a rollover if the forward step < this share of capacity
    # spike / over_limit
    spike_factor: float = 5.0  # day > factor × median of previous days
    spike_history_days: int = 14
    spike_min_history_days: int = 7  # fewer days of history: no judgement
    spike_floor: float = 5.0  # absolute floor of a day's consumption to call it a spike
    interval_spike_factor: float = 10.0  # interval > factor × median of its neighbours
    interval_spike_neighbours: int = 4  # on each side
    interval_spike_floor: float = 1.0
    daily_limit: float | None = None  # over_limit on a day's consumption
    interval_limit: float | None = None  # over_limit on one interval
    # zero_consumption
    zero_days: float = 7.0
    # sum_mismatch
    sum_tolerance: float = 0.02
    register_resolution: float = 0.01  # one unit of the register's last digit
    sum_boundary_tolerance_s: float = 300.0  # register reading this close to local midnight counts as daily read
    # clock_drift
    clock_drift_s: float = 120.0
    # voltage
    voltage_tolerance: float = 0.10  # ГОСТ 32144-2013: ±10 % of nominal
    phase_loss_fraction: float = 0.5  # below this share of nominal the phase counts as lost
    # no_contact
    no_contact_s: float = 86400.0
    # verification
    verification_warn_days: int = 30
    # house_imbalance
    imbalance_tolerance: float = 0.10
    imbalance_floor: float = 1.0  # ignore houses whose balance consumption is below this
    # estimation
    linear_max_gap_s: float = 7200.0
    like_days: int = 4
    average_lookback_days: int = 90
    average_min_days: int = 7
    # event lifecycle
    auto_close: bool = True
    # tamper journals: journal OBIS -> event codes that raise `tamper` (others are logged only)
    tamper_codes: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: dict(DEFAULT_TAMPER_CODES))


# СПОДЭС journal codes (ГОСТ Р 58940-2020 annex Д, askue.drivers.dlms.cosem; docs/vee.md); codes
# that mark the end of an influence (magnetic field 2, RF field 7 gone) are not raised.
DEFAULT_TAMPER_CODES: dict[str, tuple[int, ...]] = {
    # external influence: magnetic field, terminal cover, case, external seal, RF field
    "0.0.99.98.4.255": (1, 3, 4, 5, 6),
    "0.0.99.98.6.255": tuple(range(1, 64)),  # access control: every entry is an unauthorised attempt
}

# Per-resource defaults that differ from electricity, in each resource's canonical unit (m³,
# Гкал instead of kWh; the ingest converts every value into it, headend/units.py).
RESOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "electricity": {},
    "cold_water": {"spike_floor": 0.5, "interval_spike_floor": 0.1, "register_resolution": 0.001},
    "hot_water": {"spike_floor": 0.3, "interval_spike_floor": 0.1, "register_resolution": 0.001},
    # 0.12 Гкал ≈ 0.5 GJ, 0.012 Гкал ≈ 0.05 GJ: the floors these were when heat was kept in GJ
    "heat": {"spike_floor": 0.12, "interval_spike_floor": 0.012, "register_resolution": 0.001},
    "gas": {"spike_floor": 3.0, "interval_spike_floor": 0.3, "register_resolution": 0.001},
}

_FIELDS = {f.name: f for f in dataclasses.fields(Thresholds)}


def _coerce(name: str, value: Any, where: str) -> Any:
    if name not in _FIELDS:
        raise ThresholdError(f"{where}: unknown threshold {name!r} (known: {', '.join(sorted(_FIELDS))})")
    default = getattr(Thresholds(), name)
    if name == "tamper_codes":
        if not isinstance(value, Mapping):
            raise ThresholdError(f"{where}: tamper_codes must map a journal OBIS to a list of codes")
        try:
            return {str(k): tuple(int(c) for c in v) for k, v in value.items()}
        except (TypeError, ValueError) as e:
            raise ThresholdError(f"{where}: tamper_codes: codes must be integers ({e})") from None
    if value is None and name in ("daily_limit", "interval_limit"):
        return None
    if isinstance(default, bool) or name == "auto_close":
        if not isinstance(value, bool):
            raise ThresholdError(f"{where}: {name} must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ThresholdError(f"{where}: {name} must be a number, got {value!r}")
    if value < 0:
        raise ThresholdError(f"{where}: {name} must not be negative, got {value}")
    return int(value) if isinstance(default, int) and not isinstance(default, bool) else float(value)


@dataclass
class ThresholdConfig:
    """Overrides by scope; `for_meter` resolves the effective thresholds of one meter."""

    defaults: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, dict[str, Any]] = field(default_factory=dict)
    model: dict[str, dict[str, Any]] = field(default_factory=dict)
    organisation: dict[str, dict[str, Any]] = field(default_factory=dict)
    organisation_resource: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # what for_meter made, per (resource, model, organisation): the live hook asks for every
    # meter of every batch, and most share a handful of these (emptied by set())
    _made: dict[tuple, Thresholds] = field(default_factory=dict, repr=False, compare=False)

    def for_meter(self, meter: MeterFacts) -> Thresholds:
        key = (meter.resource, meter.model, meter.organisation)
        th = self._made.get(key)
        if th is None:
            th = self._made[key] = self._merged(meter)
        return th

    def _merged(self, meter: MeterFacts) -> Thresholds:
        merged: dict[str, Any] = dict(RESOURCE_DEFAULTS.get(meter.resource, {}))
        merged.update(self.defaults)
        merged.update(self.resource.get(meter.resource, {}))
        if meter.model:
            merged.update(self.model.get(meter.model, {}))
        if meter.organisation:
            merged.update(self.organisation.get(meter.organisation, {}))
            merged.update(self.organisation_resource.get((meter.organisation, meter.resource), {}))
        return dataclasses.replace(Thresholds(), **merged) if merged else Thresholds()

    def set(self, scope: str, name: str | None, values: Mapping[str, Any], resource: str | None = None) -> None:
        """Add overrides: scope is default|resource|model|organisation (name is its value;
        `resource` narrows an organisation's override to one resource)."""
        where = f"{scope}{'=' + name if name else ''}{' resource=' + resource if resource else ''}"
        if not isinstance(values, Mapping):
            raise ThresholdError(f"{where}: expected a mapping of threshold: value")
        clean = {str(k): _coerce(str(k), v, where) for k, v in values.items()}
        self._made.clear()
        if scope == "default":
            self.defaults.update(clean)
        elif scope == "resource":
            self.resource.setdefault(_need(name, where), {}).update(clean)
        elif scope == "model":
            self.model.setdefault(_need(name, where), {}).update(clean)
        elif scope == "organisation" and resource:
            self.organisation_resource.setdefault((_need(name, where), resource), {}).update(clean)
        elif scope == "organisation":
            self.organisation.setdefault(_need(name, where), {}).update(clean)
        else:
            raise ThresholdError(f"{where}: unknown scope {scope!r} (default, resource, model, organisation)")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, source: str = "thresholds") -> ThresholdConfig:
        """From the YAML layout: defaults / resources / models / organisations (an
        organisation entry may hold a `resources:` mapping of its own)."""
        cfg = cls()
        if not data:
            return cfg
        if not isinstance(data, Mapping):
            raise ThresholdError(f"{source}: expected a mapping at the top level")
        unknown = set(data) - {"defaults", "resources", "models", "organisations"}
        if unknown:
            raise ThresholdError(f"{source}: unknown section(s) {sorted(unknown)} "
                                 "(defaults, resources, models, organisations)")
        cfg.set("default", None, data.get("defaults") or {})
        for name, vals in (data.get("resources") or {}).items():
            cfg.set("resource", str(name), vals or {})
        for name, vals in (data.get("models") or {}).items():
            cfg.set("model", str(name), vals or {})
        for name, vals in (data.get("organisations") or {}).items():
            vals = dict(vals or {})
            per_res = vals.pop("resources", None) or {}
            cfg.set("organisation", str(name), vals)
            for res, rv in per_res.items():
                cfg.set("organisation", str(name), rv or {}, resource=str(res))
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> ThresholdConfig:
        import yaml

        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise ThresholdError(f"{path}: cannot read thresholds file ({e.strerror})") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ThresholdError(f"{path}: not valid YAML ({e})") from None
        return cls.from_mapping(data, str(path))


def _need(name: str | None, where: str) -> str:
    if not name:
        raise ThresholdError(f"{where}: the scope needs a name")
    return name
