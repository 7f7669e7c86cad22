"""Canonical units and the conversion factors, against figures worked out from the
definitions (docs/units.md): 1 cal(IT) = 4.1868 J, 1 W·h = 3600 J."""
from __future__ import annotations

import pytest

from askue.headend import units


@pytest.mark.parametrize("resource, obis, kind, unit, factor, canonical", [
    ("heat", "6.0.1.0.0.255", "register", "Гкал", 1.0, "Gcal"),
    ("heat", "6.0.1.0.0.255", "register", "Gcal", 1.0, "Gcal"),
    ("heat", "6.0.1.0.0.255", "register", "Mcal", 0.001, "Gcal"),
    ("heat", "6.0.1.0.0.255", "register", "GJ", 1 / 4.1868, "Gcal"),  # 0.238845896627…
    ("heat", "6.0.1.0.0.255", "register", "MJ", 1e-3 / 4.1868, "Gcal"),
    ("heat", "6.0.1.0.0.255", "register", "kWh", 3.6e6 / 4.1868e9, "Gcal"),  # 0.000859845227858985
    ("heat", "6.0.1.0.0.255", "register", "MWh", 3.6e9 / 4.1868e9, "Gcal"),  # 0.859845227858985
    ("heat", "6.0.1.0.0.255", "register", "Wh", 3.6e3 / 4.1868e9, "Gcal"),
    ("heat", "6.0.2.0.0.255", "register", "m3", 1.0, "m3"),  # a heat meter's volume register
    ("electricity", "1.0.1.8.0.255", "register", "kWh", 1.0, "kWh"),
    ("electricity", "1.0.1.8.1.255", "register", "Wh", 1e-3, "kWh"),
    ("electricity", "1.0.2.8.0.255", "register", "MWh", 1e3, "kWh"),
    ("electricity", "1.0.3.8.0.255", "register", "kvarh", 1.0, "kvarh"),
    ("electricity", "1.0.4.8.0.255", "register", "varh", 1e-3, "kvarh"),
    ("electricity", "1.0.1.29.0.255", "interval", "Wh", 1e-3, "kWh"),
    ("cold_water", "8.0.1.0.0.255", "register", "l", 1e-3, "m3"),
    ("hot_water", "9.0.1.0.0.255", "register", "м³", 1.0, "m3"),
    ("gas", "7.0.3.0.0.255", "register", "л", 1e-3, "m3"),
    ("unknown", "6.0.1.0.0.255", "register", "GJ", 1 / 4.1868, "Gcal"),  # not in the registry yet: the OBIS medium
    (None, "1.0.32.7.0.255", "instant", "V", 1.0, "V"),
    ("electricity", "1.0.1.7.0.255", "instant", "W", 1e-3, "kW"),
    ("heat", "6.0.9.0.0.255", "instant", "l/h", 1e-3, "m3/h"),
])
def test_factors(resource, obis, kind, unit, factor, canonical) -> None:
    c = units.convert(resource, obis, kind, unit)
    assert c.factor == pytest.approx(factor, rel=1e-12) and c.unit == canonical
    assert c.same == (factor == 1.0)


def test_a_gigajoule_and_a_kilowatt_hour_in_gigacalories() -> None:
    assert 1000 * units.convert("heat", "6.0.1.0.0.255", "register", "GJ").factor == pytest.approx(238.845896627, 1e-9)
    assert 1000 * units.convert("heat", "6.0.1.0.0.255", "register", "kWh").factor == pytest.approx(0.859845227859,
                                                                                                     1e-9)


@pytest.mark.parametrize("resource, obis, kind, unit, says", [
    ("electricity", "1.0.1.8.0.255", "register", "GJ", "'GJ' is not a unit of register 1.0.1.8.0.255 of an "
                                                       "electricity meter; use Wh, kWh, MWh"),
    ("electricity", "1.0.1.8.0.255", "register", "kvarh", "is not a unit"),  # reactive energy on the active register
    ("cold_water", "8.0.1.0.0.255", "register", "kWh", "'kWh' is not a unit of register 8.0.1.0.0.255 of a cold "
                                                        "water meter; use m3, l"),
    ("heat", "6.0.1.0.0.255", "register", "m3", "is not a unit"),
    ("heat", "6.0.1.0.0.255", "register", "furlong", "'furlong' is unknown"),
    ("electricity", "1.0.1.29.0.255", "interval", "", "'' is not a unit of interval"),
    (None, "1.0.32.7.0.255", "instant", "parsec", "'parsec' is unknown"),
])
def test_refused(resource, obis, kind, unit, says) -> None:
    with pytest.raises(units.UnitError) as e:
        units.convert(resource, obis, kind, unit)
    assert says in e.value.reason and e.value.reason_ru


def test_events_carry_codes_not_quantities() -> None:
    assert units.convert("electricity", "0.0.99.98.4.255", "event", "").same


def test_display_units_are_the_canonical_ones() -> None:
    assert units.unit("heat", "6.0.1.0.0.255") == "Гкал" and units.unit("heat", "6.0.2.0.0.255") == "м³"
    assert units.unit("electricity", "1.0.3.8.0.255", "en") == "kvarh"
    assert units.amount(1036.9, "electricity", "1.0.1.8.0.255") == "1\u00a0036,9 кВт·ч"
