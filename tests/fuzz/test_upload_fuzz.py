"""Uploaded files damaged on the way or filled in wrongly: 80020 XML, hourly and
integral xlsx and registry CSV, each mutated from a valid sample (10,000 seeded cases
per format; 4,000 for each xlsx reader, see FUZZ_XLSX). A reader returns its result or raises its typed error (ExportFormatError /
RegistryFileError) saying where and what; nothing else escapes. Through PostgreSQL,
a file that is refused stores nothing.
"""
from __future__ import annotations

import asyncio
import io
import random
import zipfile
from datetime import date
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import given, settings
from mutation import FUZZ, FUZZ_DB, NASTY_STRINGS, mutate_bytes, seeds

from askue.headend.billing.formats import hourly_xlsx as hx
from askue.headend.billing.formats import integral_xlsx as ix
from askue.headend.billing.formats import xml80020
from askue.headend.billing.formats.errors import ExportFormatError
from askue.headend.registry.importer import RegistryFileError, parse_rows, read_table

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning:openpyxl.*")]

GOLDEN_80020 = Path(__file__).resolve().parents[1] / "headend" / "billing_golden" / "80020_7707083893_20240305_12.xml"
MSK = ZoneInfo("Europe/Moscow")


def _mutate_xml(data: bytes, rng: random.Random) -> bytes:
    """Byte damage, or a text/attribute value swapped for a nasty one (structure kept)."""
    if rng.random() < 0.5:
        return mutate_bytes(data, rng)
    text = data.decode("cp1251")
    for _ in range(rng.randint(1, 3)):
        quotes = [i for i, ch in enumerate(text) if ch in "\">"]
        i = rng.choice(quotes) + 1
        j = min(k for k in (text.find('"', i), text.find("<", i), len(text)) if k >= 0)
        text = text[:i] + rng.choice(NASTY_STRINGS[:30] + ["0", "-5", "1e9", "99", "2400", "0000", "1"]) + text[j:]
    return text.encode("cp1251", "replace")


def test_80020_files() -> None:
    sample = GOLDEN_80020.read_bytes()
    outcomes = {"ok": 0, "error": 0}

    @FUZZ
    @given(seeds)
    def one(seed: int) -> None:
        data = _mutate_xml(sample, random.Random(seed))
        try:
            xml80020.parse(data, tz=MSK)
        except ExportFormatError as e:
            assert e.issues and all(i.where and i.what and i.fix for i in e.issues)
            outcomes["error"] += 1
        else:
            outcomes["ok"] += 1

    one()
    assert outcomes["error"] > 3000 and outcomes["ok"] > 100, outcomes


@pytest.mark.parametrize("data", [
    b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><message>&c;</message>',          # entity expansion
    b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><message>&x;</message>',  # XXE
    b'<?xml version="1.0" encoding="x-unknown"?><message/>', b"", b"<message" * 1000, b"\xff\xfe<\x00m\x00",
])
def test_80020_hostile_xml(data: bytes) -> None:
    with pytest.raises(ExportFormatError) as e:
        xml80020.parse(data, tz=MSK)
    assert "root:" not in str(e.value)  # /etc/passwd never comes back


def _members(xlsx: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(xlsx)) as z:
        return {n: z.read(n) for n in z.namelist()}


def _rezip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for n, b in members.items():
            z.writestr(n, b)
    return buf.getvalue()


def _mutated_xlsx(members: dict[str, bytes], rng: random.Random) -> bytes:
    """Damage inside the workbook (sheet XML, shared strings, workbook part) or the zip itself."""
    r = rng.random()
    if r < 0.1:
        return mutate_bytes(_rezip(members), rng)
    names = sorted(members)
    sheetish = [n for n in names if "worksheets/" in n or "sharedStrings" in n] or names
    name = rng.choice(sheetish if r < 0.85 else names)
    out = dict(members)
    if rng.random() < 0.7:  # swap a value between tags for a nasty one: the usual filled-in-wrong case
        text = out[name].decode("utf-8", "replace")
        for _ in range(rng.randint(1, 3)):
            starts = [i for i, ch in enumerate(text) if ch == ">"]
            if not starts:
                break
            i = rng.choice(starts) + 1
            j = text.find("<", i)
            j = len(text) if j < 0 else j
            text = text[:i] + rng.choice(NASTY_STRINGS[:30] + ["-1", "1e308", "0", "12.5", "44000"]) + text[j:]
        out[name] = text.encode("utf-8", "surrogatepass")
    else:
        out[name] = mutate_bytes(out[name], rng)
    return _rezip(out)


# openpyxl takes ~6-12 ms to open even a small workbook here: 4,000 cases keep each
# xlsx test near a minute on this shared machine (10,000 took ~2 minutes under load).
FUZZ_XLSX = settings(FUZZ, max_examples=4_000)


def _xlsx_fuzz(sample: bytes, read) -> dict[str, int]:
    members = _members(sample)
    outcomes = {"ok": 0, "error": 0}

    @FUZZ_XLSX
    @given(seeds)
    def one(seed: int) -> None:
        data = _mutated_xlsx(members, random.Random(seed))
        try:
            read(data)
        except ExportFormatError as e:
            assert e.issues and all(i.where and i.what for i in e.issues)
            outcomes["error"] += 1
        else:
            outcomes["ok"] += 1

    one()
    assert outcomes["error"] > 400 and outcomes["ok"] > 100, outcomes
    return outcomes


def test_hourly_xlsx_files() -> None:
    feb = date(2024, 2, 1)
    # two days filled (the rest are hours not read yet): a small sheet keeps openpyxl at ~6 ms a case
    vals = {(d, h): Decimal(h) + Decimal(d.day) / 100 for d in hx.month_days(feb)[:2] for h in range(24)}
    _xlsx_fuzz(hx.write_hourly_xlsx([hx.HourlyProfile(feb, vals, "01284918")]), hx.read_hourly_xlsx)


def test_integral_xlsx_files() -> None:
    rows = [ix.IntegralRow("01284918", "A+", "День", Decimal("12345.67"), None, "780100000027780001",
                           "Комендантский пр., д.140", "Ожидание", "РТП 100, яч.2"),
            ix.IntegralRow("20300109", "A+", "Сутки", Decimal("435"), None, "780100000027780002", "Склад",
                           "Ожидание", "")]
    _xlsx_fuzz(ix.write_integral_xlsx(rows), ix.read_integral_xlsx)


REGISTRY_CSV = (Path(__file__).resolve().parents[2] / "configs" / "registry-example.csv").read_bytes()


def test_registry_csv_files(tmp_path: Path) -> None:
    path = tmp_path / "registry.csv"
    outcomes = {"ok": 0, "file_error": 0, "row_errors": 0}

    @FUZZ
    @given(seeds)
    def one(seed: int) -> None:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            data = mutate_bytes(REGISTRY_CSV, rng)
        else:  # a cell replaced, as a spreadsheet user would
            text = REGISTRY_CSV.decode("utf-8-sig")
            seps = [i for i, ch in enumerate(text) if ch in ",;\n"]
            i = rng.choice(seps) + 1
            j = min([k for k in (text.find(",", i), text.find("\n", i)) if k >= 0] or [len(text)])
            data = (text[:i] + rng.choice(NASTY_STRINGS) + text[j:]).encode("utf-8", "surrogatepass")
            if rng.random() < 0.3:
                data = data.decode("utf-8", "replace").encode("cp1251", "replace")
        path.write_bytes(data)
        try:
            header, raw = read_table(path)
            rows, errors = parse_rows(header, raw, None)
        except RegistryFileError as e:
            assert str(e)
            outcomes["file_error"] += 1
            return
        for err in errors:
            assert err.row >= 1 and str(err)
        outcomes["row_errors" if errors else "ok"] += 1

    one()
    assert outcomes["ok"] > 100 and outcomes["file_error"] > 100 and outcomes["row_errors"] > 100, outcomes


# ------------------------------------------------------------------ through PostgreSQL


def test_refused_80020_imports_store_nothing(pg_dsn: str) -> None:
    from askue.headend.billing.importers import import_80020

    sample = GOLDEN_80020.read_bytes()
    msg = xml80020.parse(sample, tz=MSK)
    codes = [p.code for a in msg.areas for p in a.points]
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        for code in codes:  # every measuring point of the golden file is a known meter
            c.execute("INSERT INTO meters (code, status, resource) VALUES (%s, 'active', 'electricity')", (code,))
    outcomes = {"stored": 0, "refused": 0}

    async def run(seed: int) -> None:
        data = _mutate_xml(sample, random.Random(seed))
        conn = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
        try:
            before = await (await conn.execute("SELECT count(*), coalesce(sum(value), 0) FROM intervals")).fetchone()
            audit = await (await conn.execute("SELECT count(*) FROM audit_log")).fetchone()
            try:
                await import_80020(conn, data, org_ids=None, author="fuzz", tz=MSK)
            except ExportFormatError:
                outcomes["refused"] += 1
                after = await (await conn.execute("SELECT count(*), coalesce(sum(value), 0) FROM intervals")).fetchone()
                assert after == before
                assert await (await conn.execute("SELECT count(*) FROM audit_log")).fetchone() == audit
            else:
                outcomes["stored"] += 1
        finally:
            await conn.close()

    @FUZZ_DB
    @given(seeds)
    def one(seed: int) -> None:
        asyncio.run(run(seed))

    one()
    assert outcomes["refused"] > 50, outcomes
