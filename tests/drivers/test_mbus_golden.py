"""M-Bus record decoding against libmbus's own decodings of real meters' telegrams.

Corpus: tests/drivers/golden/mbus/ (README.md there names the source): for each telegram the
captured bytes (<name>.hex) and what libmbus prints for it (<name>.xml: function, storage
number, tariff/subunit when the record has DIFEs, the VIF's meaning with its scale, the raw
value; <name>.norm.xml: quantity, base unit and the scaled value). Every record of every
telegram is compared: function, storage number, tariff, subunit, quantity, unit, value and
dates; a record libmbus leaves empty (unknown VIF) must be the one our decoder skips.

Where libmbus and EN 13757-3 disagree, the test says so record by record (DIVERGENCES) with
the reason; everything else must agree.
"""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from askue.drivers.errors import ProtocolError
from askue.drivers.mbus import frames as f
from askue.drivers.mbus import obis
from askue.drivers.mbus.records import Record

CORPUS = Path(__file__).parent / "golden" / "mbus"
SOURCE = "rscada/libmbus test/test-frames"
MSK = timezone(timedelta(hours=3))

WATER = ["ACW_Itron-BM-plus-m", "ACW_Itron-CYBLE-M-Bus-14", "EFE_Engelmann-WaterStar", "GWF-MTKcoder", "els_falcon",
         "els_tmpa_telegramm1", "frame2", "itron_bm_+m", "itron_cyble_m-bus_v1.4_cold_water",
         "itron_cyble_m-bus_v1.4_water", "manual_frame3", "manual_frame7", "oms_frame2", "ram_modularis",
         "siemens_water", "siemens_wfh21"]
HEAT = ["EDC", "EFE_Engelmann-Elster-SensoStar-2", "ELS_Elster-F96-Plus", "Elster-F2", "SEN_Pollustat",
        "SEN_Sensus-PolluStat-E", "SEN_Sensus-PolluTherm", "SLB_CF-Compact-Integral-MK-MaXX", "ZRM_Minol-Minocal-C2",
        "abb_f95", "allmess_cf50", "amt_calec_mb", "engelmann_sensostar2c", "example_data_01", "example_data_02",
        "itron_cf_51", "itron_cf_55", "itron_cf_echo_2", "itron_integral_mk_maxx", "kamstrup_multical_601",
        "landis+gyr_ultraheat_t230", "metrona_pollutherm", "metrona_ultraheat_xs", "minol_minocal_c2",
        "minol_minocal_wr3", "oms_frame3", "sen_pollucom_e", "sen_pollutherm", "sontex_supercal_531_telegram1",
        "svm_f22_telegram1", "tch_telegramm1"]
# Not water or heat, in the corpus for their variable-length (LVAR) records.
LVAR_OTHER = ["LGB_G350", "itron_cyble_m-bus_v1.4_gas", "example_binary16_lvar"]
# Fixed data structure (CI 0x73): not a variable-data answer.
FIXED = ["sen_pollusonic_2", "manual_frame2"]

FUNCTIONS = {"Instantaneous value": "instantaneous", "Maximum value": "maximum", "Minimum value": "minimum",
             "Value during error state": "error"}
# Our quantity -> libmbus's normalised <Quantity>.
QUANTITIES = {
    "energy": "Energy", "volume": "Volume", "mass": "Mass", "on_time": "On time", "operating_time": "Operating time",
    "power": "Power", "volume_flow": "Volume flow", "mass_flow": "Mass flow", "flow_temperature": "Flow temperature",
    "return_temperature": "Return temperature", "temperature_difference": "Temperature difference",
    "external_temperature": "External temperature", "pressure": "Pressure", "date": "Time point (date)",
    "datetime": "Time point (date & time)", "hca_units": "H.C.A.", "averaging_duration": "Averaging Duration",
    "actuality_duration": "Actuality Duration", "fabrication_number": "Fabrication No",
    "enhanced_identification": "(Enhanced) Identification", "bus_address": "Bus Address",
    "access_number": "Access Number (transmission count)", "medium": "Medium", "manufacturer": "Manufacturer",
    "parameter_set": "Parameter set identification", "model_version": "Model / Version",
    "hardware_version": "Hardware version", "firmware_version": "Firmware version",
    "software_version": "Software version", "customer_location": "Customer location", "customer": "Customer",
    "error_flags": "Error flags", "digital_output": "Digital Output", "digital_input": "Digital Input",
    "supplier_information": "Special supplier information", "voltage": "Voltage", "current": "Current",
    "manufacturer_specific": "Manufacturer specific",
}
UNITS = {"m3": "m^3", "m3/h": "m^3/h", "m3/min": "m^3/min", "m3/s": "m^3/s", "°C": "°C", "": ""}
UNIT_OF_QUANTITY = {"hca_units": "Units for H.C.A."}  # a unit libmbus names, ours is dimensionless
DATE_QUANTITIES = ("date", "datetime")


@dataclass
class Expected:
    function: str | None
    storage: int
    tariff: int
    subunit: int
    quantity: str | None
    unit: str | None
    value: str | None
    vif_text: str  # the .xml's <Unit>: the VIF's meaning with its scale


def load(name: str) -> tuple[bytes, list[Expected]]:
    return _load(name)[:2]  # type: ignore[return-value]


def _load(name: str) -> tuple[bytes, list[Expected], dict[str, str]]:
    """The frame, its data records and the special functions libmbus found (DIF 0x0F, 0x1F)."""
    frame = bytes.fromhex(CORPUS.joinpath(f"{name}.hex").read_text())
    raw = ET.parse(CORPUS / f"{name}.xml").getroot()
    norm = ET.parse(CORPUS / f"{name}.norm.xml").getroot()
    out = []
    special = {}
    for r, n in zip(raw.iter("DataRecord"), norm.iter("DataRecord"), strict=True):
        fn = r.findtext("Function")
        if fn in ("Manufacturer specific", "More records follow"):
            special[fn] = r.findtext("Value") or ""  # the tail after DIF 0x0F / 0x1F: Telegram.manufacturer_data, not a record
            continue
        out.append(Expected(
            fn, int(r.findtext("StorageNumber") or 0), int(r.findtext("Tariff") or 0),
            int(r.findtext("Device") or 0), n.findtext("Quantity"), _fix(n.findtext("Unit")), n.findtext("Value"),
            _fix(r.findtext("Unit")) or ""))
    return frame, out, special


def _fix(s: str | None) -> str | None:
    # libmbus writes UTF-8 "°" into files it declares ISO-8859-1
    return None if s is None else s.replace("Â°", "°")


# (telegram, record index) -> (our value, why it differs from libmbus's). Landis+Gyr
# Ultraheat T230 sends its maxima with the date they occurred: DIF 94 10 (maximum, tariff 1),
# VIF power/flow/temperature, VIFE 0x6F = E110 1f1b "date (/time) of end of last ..." (EN 13757-3
# combinable VIFE table). The value is a type F date/time, not a temperature: libmbus ignores
# the VIFE and prints the raw 410653746 (bytes 32 14 7A 18 = 26.08.2011 20:50) as 41065374.6 °C.
_DATE_OF_MAXIMUM = "VIFE 0x6F: the value is the date/time the maximum occurred (type F)"
DIVERGENCES: dict[tuple[str, int], tuple[object, str]] = {
    ("landis+gyr_ultraheat_t230", 19): (None, _DATE_OF_MAXIMUM + "; all zeros: not set"),
    ("landis+gyr_ultraheat_t230", 20): (None, _DATE_OF_MAXIMUM + "; all zeros: not set"),
    ("landis+gyr_ultraheat_t230", 21): (datetime(2011, 8, 26, 20, 50), _DATE_OF_MAXIMUM),
    ("landis+gyr_ultraheat_t230", 22): (datetime(2011, 8, 9, 11, 43), _DATE_OF_MAXIMUM),
}


def _same_value(rec: Record, exp: Expected) -> bool:
    got, want = rec.value, exp.value or ""
    if got is None and "bcd_invalid" in rec.flags:
        # BCD digits A-F (seen in "value during error state" records) are not a number: we keep
        # the record without a value; libmbus drops the nibbles above 9 and prints the rest.
        return True
    if rec.quantity in DATE_QUANTITIES or isinstance(got, date):
        if got is None:
            # libmbus prints an invalid or unset date as zeros (day or month 00)
            return bool(re.search(r"-00(T|$)|^1900-01-00", want)) and bool(rec.flags)
        text = got.isoformat() if isinstance(got, date) and not isinstance(got, datetime) else \
            got.strftime("%Y-%m-%dT%H:%M:%S") + "Z"
        return text == want
    if isinstance(got, bytes):
        return got.hex(" ").upper() == want
    if isinstance(got, str):
        return got == want
    if got is None:
        return False
    return math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1.5e-6)


def _check(name: str) -> tuple[f.Telegram, list[str]]:
    frame, expected, special = _load(name)
    tel = f.decode_rsp_ud(frame)
    assert tel.more == ("More records follow" in special), f"{name}: DIF 0x1F (more records follow)"
    tail = special.get("Manufacturer specific", special.get("More records follow", ""))
    assert tel.manufacturer_data.hex(" ").upper() == tail, f"{name}: manufacturer-specific data after DIF 0x0F/0x1F"
    decoded = {r.index: r for r in tel.records}
    skipped = {s.index: s for s in tel.skipped}
    assert set(decoded) | set(skipped) == set(range(len(expected))), f"{name}: record count differs from libmbus"
    problems = []
    for i, exp in enumerate(expected):
        where = f"{SOURCE}/{name}.hex record {i}"
        if i in skipped:
            # libmbus has no meaning for it either: an empty normalised record, "Unknown" VIF text
            assert exp.quantity is None and "Unknown" in exp.vif_text, f"{where}: skipped, libmbus says {exp}"
            continue
        rec = decoded[i]
        checks = {
            "function": (rec.function, FUNCTIONS[exp.function or ""]),
            "storage": (rec.storage, exp.storage), "tariff": (rec.tariff, exp.tariff),
            "subunit": (rec.subunit, exp.subunit),
            "quantity": (rec.label if rec.quantity == "plain_text" else QUANTITIES.get(rec.quantity, rec.quantity),
                         exp.quantity),
        }
        if rec.quantity not in DATE_QUANTITIES and rec.quantity != "plain_text":
            checks["unit"] = (UNIT_OF_QUANTITY.get(rec.quantity, UNITS.get(rec.unit, rec.unit)), exp.unit)
        for what, (got, want) in checks.items():
            if got != want:
                problems.append(f"{where}: {what} {got!r}, libmbus {want!r}")
        if (name, i) in DIVERGENCES:
            want, _why = DIVERGENCES[(name, i)]
            if rec.value != want or "limit_exceed_date" not in rec.extensions:
                problems.append(f"{where}: value {rec.value!r}, expected {want!r} ({_why})")
        elif not _same_value(rec, exp):
            problems.append(f"{where}: value {rec.value!r} {rec.flags}, libmbus {exp.value!r} ({exp.vif_text})")
    return tel, problems


@pytest.mark.parametrize("name", WATER + HEAT + LVAR_OTHER)
def test_records_agree_with_libmbus(name):
    _tel, problems = _check(name)
    assert not problems, "\n".join(problems)


def test_corpus_size_and_makers():
    assert len(WATER) + len(HEAT) >= 40
    makers = {f.decode_rsp_ud(load(n)[0]).header.manufacturer for n in WATER + HEAT}
    assert len(makers) >= 15, makers


# ---- what the gateway makes of them (OBIS readings) -----------------------------------------

def readings(name: str, **kw) -> dict[str, float]:
    tel = f.decode_rsp_ud(load(name)[0])
    return {r.obis: r.value for r in obis.readings(tel, MSK, **kw)}


@pytest.mark.parametrize("name", [n for n in HEAT if n != "amt_calec_mb"])
def test_every_heat_meter_keeps_its_energy_register(name):
    # amt_calec_mb (Aquametro CALEC MB) sends instantaneous values only: no energy record at all.
    assert "6.0.1.0.0.255" in readings(name)


@pytest.mark.parametrize("name", WATER)
def test_every_water_meter_with_a_volume_register_gives_it(name):
    regs = readings(name)
    if name == "manual_frame7":  # a hand-made frame with one record, which is not a volume
        assert not regs
    else:
        assert {"8.0.1.0.0.255", "9.0.1.0.0.255"} & set(regs)


def test_lvar_records_itron_cyble_siemens_wfh21_landis_gyr_g350():
    cyble = f.decode_rsp_ud(load("ACW_Itron-CYBLE-M-Bus-14")[0])
    (cust,) = [r for r in cyble.records if r.quantity == "plain_text"][:1]
    assert (cust.label, cust.value) == ("cust. ID", "09LA076755")  # 0D 7C 08 "cust. ID" 0A <10 characters>
    # medium 0x07 "water" (cold or hot): without a configured resource it is cold water
    assert readings("ACW_Itron-CYBLE-M-Bus-14") == {"8.0.1.0.0.255": 0.031}
    wfh = f.decode_rsp_ud(load("siemens_wfh21")[0])
    assert [r.value for r in wfh.records if r.quantity == "parameter_set"] == ["WFH21"]  # 0D FD 0B 05 …
    assert readings("siemens_wfh21") == {"9.0.1.0.0.255": 0.0}
    g350 = f.decode_rsp_ud(load("LGB_G350")[0])
    assert [r.value for r in g350.records if r.quantity == "fabrication_number"] == ["G0017591208205814"]
    binary = f.decode_rsp_ud(load("example_binary16_lvar")[0])
    assert len(binary.records[0].value) == 16  # LVAR 0xF0: a 16-byte binary field


def test_energy_in_the_first_extension_table_engelmann_sensostar_2c():
    tel = f.decode_rsp_ud(load("engelmann_sensostar2c")[0])
    energy = [r for r in tel.records if r.quantity == "energy" and r.storage == 0]
    assert [(r.vib.hex(" "), r.tariff, r.value) for r in energy] == [
        ("fb 00", 0, 800_000.0), ("fb 00", 2, 0.0), ("fb 00", 3, 0.0)]  # FB 00: 0.1 MWh, 8 -> 0.8 MWh
    regs = readings("engelmann_sensostar2c")
    assert regs["6.0.1.0.0.255"] == pytest.approx(2.88)  # 0.8 MWh = 2.88 GJ; tariffs 2 and 3 are not the total
    assert regs["6.0.2.0.0.255"] == pytest.approx(12.9)


def test_heat_accumulated_from_positive_contributions_sensus_pollustat_and_edc():
    tel = f.decode_rsp_ud(load("SEN_Pollustat")[0])
    (heat,) = [r for r in tel.records if r.quantity == "energy"]
    assert (heat.vib.hex(" "), heat.extensions, heat.value) == ("86 3b", ("accumulation_positive",), 39_831_000.0)
    assert readings("SEN_Pollustat")["6.0.1.0.0.255"] == pytest.approx(39_831 * 0.0036)  # kWh -> GJ
    edc = f.decode_rsp_ud(load("EDC")[0])
    pos = [r for r in edc.records if r.extensions == ("accumulation_positive",) and r.subunit == 0]
    neg = [r for r in edc.records if r.extensions == ("accumulation_negative",) and r.subunit == 0]
    assert (pos[0].value, neg[0].value) == (35_000.0, 465_000.0)
    # Cooling (negative contributions) is not heat: the register is the positive accumulation.
    assert readings("EDC")["6.0.1.0.0.255"] == pytest.approx(35_000 * 3.6e-6)


def test_unknown_vif_skips_one_record_sensus_pollutherm():
    tel = f.decode_rsp_ud(load("sen_pollutherm")[0])
    (skipped,) = tel.skipped
    assert (skipped.index, skipped.dib.hex(), skipped.vib.hex()) == (2, "0c", "7b")
    assert "extension" in skipped.reason
    assert len(tel.records) == 8 and tel.more  # the other records are kept; DIF 0x1F at the end
    assert readings("sen_pollutherm") == pytest.approx({
        "6.0.1.0.0.255": 31.104, "6.0.2.0.0.255": 7998.92, "6.0.8.0.0.255": 54.58, "6.0.10.0.0.255": 75.5,
        "6.0.11.0.0.255": 59.4, "6.0.12.0.0.255": 16.076})


def test_invalid_time_gives_no_meter_time_and_a_reason():
    good = load("EFE_Engelmann-WaterStar")[0]
    at = good.index(bytes.fromhex("04 6D 0A 0C CD 13")) + 2
    bad = bytearray(good)
    bad[at] |= 0x80  # type F byte 0 bit 7: time invalid
    bad[-2] = f.checksum(bytes(bad[4:-2]))
    tel = f.decode_rsp_ud(bytes(bad))
    (dt,) = [r for r in tel.records if r.quantity == "datetime"]
    assert (dt.value, dt.flags) == (None, ("time_invalid",))
    rs = obis.readings(tel, MSK)
    assert rs and all(r.meter_time is None and r.reasons == ("meter_time_invalid",) for r in rs)
    assert {r.obis: r.value for r in rs}["9.0.1.0.0.255"] == 0.332  # the values themselves are kept
    assert obis.clock(f.decode_rsp_ud(good), MSK) == (datetime(2014, 3, 13, 9, 10, tzinfo=UTC), None)


@pytest.mark.parametrize("name", FIXED)
def test_fixed_data_structure_is_refused_clearly(name):
    with pytest.raises(ProtocolError, match="fixed data structure"):
        f.decode_rsp_ud(load(name)[0])
