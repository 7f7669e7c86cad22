"""Register maps, the value codec and read coalescing."""
from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from askue.drivers.modbus import codec
from askue.drivers.modbus.coalesce import Block, plan
from askue.drivers.modbus.register_map import MODELS_DIR, MapError, available_models, load_map, parse_map

SHIPPED = available_models()


# ---- shipped maps ------------------------------------------------------------------------
def test_at_least_three_real_models_one_of_them_water_or_heat():
    maps = [load_map(m) for m in SHIPPED]
    assert len(maps) >= 3
    assert any(m.resource in ("heat", "cold_water", "hot_water") for m in maps)
    for m in maps:
        head = (MODELS_DIR / f"{m.model}.yaml").read_text().splitlines()[0]
        assert head.startswith("#"), f"{m.model}: cite the source document at the top"


def test_an_electricity_map_has_what_the_end_to_end_test_reads():
    """A+ total, A+ T1 and T2, voltage L1 and a clock, in one real model's map."""
    ok = []
    for name in SHIPPED:
        m = load_map(name)
        obis = {f.obis for f in m.fields}
        if {"1.0.1.8.0.255", "1.0.1.8.1.255", "1.0.1.8.2.255", "1.0.32.7.0.255"} <= obis and m.clock:
            ok.append(name)
    assert "schneider-iem3255" in ok


# ---- bad maps give clear errors ----------------------------------------------------------
GOOD = """
protocol: modbus
model: test-meter
vendor: Test
resource: electricity
source: unit test
function: 3
fields:
  - {name: a_plus, obis: 1.0.1.8.0.255, kind: register, address: 0, type: u32, scale: 0.01, unit: kWh}
  - {name: u1, obis: 1.0.32.7.0.255, kind: instant, address: 10, type: u16, scale: 0.1, unit: V}
"""


def test_good_map_parses():
    m = parse_map(GOOD, "t.yaml")
    assert [f.count for f in m.fields] == [2, 1]


@pytest.mark.parametrize("old, new, expect", [
    ("type: u32", "type: u24", r"t\.yaml: fields\[0\]\.type: Input should be 'u16', 'i16', 'u32'"),
    ("function: 3", "function: 6", r"t\.yaml: function: Input should be 3 or 4"),
    ("obis: 1.0.1.8.0.255", "obis: 1.0.1.8", r"fields\[0\]\.obis: .*six dot-separated numbers"),
    ("address: 10", "address: 1", r"fields\[1\] 'u1' at address 1 overlaps fields\[0\] 'a_plus'"),
    ("scale: 0.1", "scale: 0", r"fields\[1\]\.scale: scale must be a positive multiplier"),
    ("kind: register", "kind: profile", r"fields\[0\]\.kind: Input should be 'register' or 'instant'"),
    ("unit: kWh}", "unit: kWh, tarif: 1}", r"fields\[0\]\.tarif: unknown key"),
    ("kind: register, address: 0", "kind: register, tariff: 1, address: 0",
     r"tariff 1 does not match OBIS 1\.0\.1\.8\.0\.255"),
    ("name: u1, obis: 1.0.32.7.0.255", "name: u1, obis: 1.0.1.8.0.255", r"OBIS 1\.0\.1\.8\.0\.255 is already read"),
    ("resource: electricity", "resource: steam", r"resource: Input should be 'electricity'"),
    ("protocol: modbus\n", "", r"protocol: Field required"),
])
def test_bad_maps_name_file_field_and_what_is_allowed(old, new, expect):
    assert old in GOOD
    with pytest.raises(MapError, match=expect):
        parse_map(GOOD.replace(old, new), "t.yaml")


def test_not_yaml_and_unknown_model(tmp_path):
    with pytest.raises(MapError, match="t.yaml: not valid YAML"):
        parse_map("fields: [", "t.yaml")
    with pytest.raises(MapError, match="a YAML mapping"):
        parse_map("- 1", "t.yaml")
    with pytest.raises(MapError, match="no such register map; known models: .*schneider-iem3255"):
        load_map("no-such-meter")
    (tmp_path / "other-name.yaml").write_text(GOOD)
    with pytest.raises(MapError, match="differs from the file name"):
        load_map("other-name", models_dir=tmp_path)


def test_clock_and_serial_validation():
    with pytest.raises(MapError, match=r"clock\.format: Input should be 'unix_u32'"):
        parse_map(GOOD + "clock: {address: 100, format: bcd}\n", "t.yaml")
    with pytest.raises(MapError, match=r"clock\.timezone: .*offset like '\+03:00'"):
        parse_map(GOOD + "clock: {address: 100, format: unix_u32, timezone: MSK}\n", "t.yaml")
    with pytest.raises(MapError, match=r"serial: .*'registers' is required for type string"):
        parse_map(GOOD + "serial: {address: 100, type: string}\n", "t.yaml")
    with pytest.raises(MapError, match=r"clock at address 10 overlaps fields\[1\] 'u1'"):
        parse_map(GOOD + "clock: {address: 10, format: unix_u32}\n", "t.yaml")
    with pytest.raises(MapError, match=r"serial at address 12 overlaps clock \(addresses 11..12\)"):
        parse_map(GOOD + "clock: {address: 11, format: unix_u32}\nserial: {address: 12, type: u16}\n", "t.yaml")


# ---- codec --------------------------------------------------------------------------------
def test_word_and_byte_orders():
    data = struct.pack(">f", 123.456)  # 42 F6 E9 79
    assert codec.bytes_to_words(data, "big", "big") == [0x42F6, 0xE979]
    assert codec.bytes_to_words(data, "big", "little") == [0xE979, 0x42F6]  # CDAB
    assert codec.bytes_to_words(data, "little", "big") == [0xF642, 0x79E9]  # BADC
    assert codec.bytes_to_words(data, "little", "little") == [0x79E9, 0xF642]  # DCBA
    for bo in ("big", "little"):
        for wo in ("big", "little"):
            assert codec.decode_value("f32", codec.bytes_to_words(data, bo, wo), bo, wo) == 123.456


@settings(max_examples=300)
@given(st.sampled_from(list(codec.TYPES)), st.sampled_from(["big", "little"]), st.sampled_from(["big", "little"]),
       st.sampled_from([1.0, 0.1, 0.01, 0.001, 10.0]), st.integers(-(10**6), 10**6))
def test_encode_decode_round_trip(dtype, bo, wo, scale, units):
    value = round(units * scale, codec.scale_decimals(scale))
    if dtype.startswith("u"):
        value = abs(value)
        units = abs(units)
    if dtype in ("u16", "i16") and abs(units) > 32767:
        return
    words = codec.encode_value(dtype, value, bo, wo, scale)
    assert len(words) == codec.size_of(dtype) and all(0 <= w <= 0xFFFF for w in words)
    got = codec.decode_value(dtype, words, bo, wo, scale)
    if dtype == "f32":
        assert got == pytest.approx(value, rel=1e-6, abs=scale)
    else:
        assert got == value


def test_integer_registers_wrap_at_capacity_like_a_counter():
    assert codec.decode_value("u16", codec.encode_value("u16", 65536 + 5, "big", "big"), "big", "big") == 5
    assert codec.decode_value("i16", [0xFFFF], "big", "big") == -1


def test_float_nan_is_an_invalid_value():
    with pytest.raises(ValueError, match="invalid"):
        codec.decode_value("f32", [0x7FC0, 0], "big", "big")


@pytest.mark.parametrize("fmt", ["unix_u32", "datetime_iec870", "ymdhms_u16"])
@pytest.mark.parametrize("bo", ["big", "little"])
def test_clock_formats_round_trip(fmt, bo):
    tz = timezone(timedelta(hours=3))
    t = datetime(2026, 3, 8, 21, 59, 58, 734_000, tzinfo=UTC)
    words = codec.encode_clock(fmt, t, bo, "big", tz)
    assert len(words) == codec.CLOCK_SIZES[fmt]
    assert codec.decode_clock(fmt, words, bo, "big", tz) == codec.quantise_clock(fmt, t)


def test_iec870_layout():
    # 2026-03-09 00:59:58.734 local: year 26; month 3 << 8 | day 9; hour 0 << 8 | minute 59; ms 58734
    tz = timezone(timedelta(hours=3))
    t = datetime(2026, 3, 8, 21, 59, 58, 734_000, tzinfo=UTC)
    assert codec.encode_clock("datetime_iec870", t, "big", "big", tz) == [26, 0x0309, 0x003B, 58734]
    with pytest.raises(ValueError):
        codec.decode_clock("datetime_iec870", [26, 0x0D09, 0, 0], "big", "big", tz)  # month 13


# ---- coalescing ---------------------------------------------------------------------------
def test_coalescing_adjacent_and_near_fields():
    spans = [(0, 2), (2, 2), (6, 2), (30, 1), (31, 4)]
    assert plan(spans, max_gap=0) == [Block(0, 4), Block(6, 2), Block(30, 5)]
    assert plan(spans, max_gap=2) == [Block(0, 8), Block(30, 5)]
    assert plan(spans, max_gap=30) == [Block(0, 35)]
    assert plan(spans, max_gap=30, max_registers=10) == [Block(0, 8), Block(30, 5)]


def test_coalescing_respects_125_registers():
    spans = [(i * 2, 2) for i in range(100)]  # 200 registers back to back
    blocks = plan(spans, max_gap=0, max_registers=125)
    assert [b.count for b in blocks] == [124, 76]
    with pytest.raises(ValueError):
        plan([(0, 4)], max_registers=3)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 4)), min_size=1, max_size=40),
       st.integers(0, 20), st.integers(4, 125), st.randoms())
def test_coalescing_covers_every_span_within_limits(layout, gap, maxr, rnd):
    # fields of a map never overlap: lay them out one after another with random holes
    spans, at = [], 0
    for hole, n in layout:
        spans.append((at + hole, n))
        at += hole + n
    rnd.shuffle(spans)
    blocks = plan(spans, max_gap=gap, max_registers=maxr)
    for a, n in spans:
        assert sum(b.covers(a, n) for b in blocks) >= 1
    assert all(b.count <= maxr for b in blocks)
    assert all(b1.end <= b2.start for b1, b2 in zip(blocks, blocks[1:], strict=False))
