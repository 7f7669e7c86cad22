"""Organisations, houses (sites), accounts (ЛС) and gateways: create, update, upsert.

One generic service for the four: each field is checked (`validate`), references are
resolved by code within what the principal sees (another organisation's house is
«does not exist»), only what changed is written, and every change is audited with its
before and after. Meters have their own service (`meters.py`): their parameters are dated.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from askue.headend.auth import audit
from askue.headend.auth.permissions import Action, Principal
from askue.headend.errors import Conflict, Invalid, NotFound
from askue.headend.registry import validate as v


@dataclass(frozen=True)
class Ref:
    """A field naming another registry object by code: stored as its id in `column`."""

    table: str
    column: str
    en: str
    ru: str
    key: str = "code"


@dataclass(frozen=True)
class Entity:
    name: str
    table: str
    key: str  # the column the object is named by
    title_en: str
    title_ru: str
    fields: dict[str, Callable[[str, Any], Any]]  # API field -> checker; stored under the same column name
    refs: dict[str, Ref] = field(default_factory=dict)
    required: tuple[str, ...] = ()


ORG = Ref("organisations", "org_id", "organisation", "организация")
HOUSE = Ref("sites", "site_id", "house", "дом")
ENTITIES: dict[str, Entity] = {
    "organisation": Entity(
        "organisation", "organisations", "code", "organisation", "организация",
        {"name": lambda f, x: v.text(f, x), "kind": v.org_kind, "inn": lambda f, x: _inn(f, x)}, required=("name",)),
    "site": Entity(
        "site", "sites", "code", "house", "дом",
        {"name": lambda f, x: v.text(f, x), "kind": v.site_kind, "address": lambda f, x: v.text(f, x, 500),
         "lat": v.latitude, "lon": v.longitude},
        refs={"org": ORG, "parent": Ref("sites", "parent_id", "substation", "подстанция")}, required=("org",)),
    "account": Entity(
        "account", "accounts", "code", "account", "лицевой счёт",
        {"flat": lambda f, x: v.text(f, x, 50), "subscriber": lambda f, x: v.text(f, x), "phone":
         lambda f, x: v.text(f, x, 50), "email": v.email},
        refs={"org": ORG, "house": HOUSE}, required=("org",)),
    "gateway": Entity(
        "gateway", "gateways", "id", "gateway", "шлюз", {"name": lambda f, x: v.text(f, x)},
        refs={"org": ORG}),
}


def _inn(f: str, x: Any) -> str | None:
    s = v.text(f, x, 12)
    if s is not None and (not s.isdigit() or len(s) not in (10, 12)):
        raise Invalid(f, f"{f}: {s!r} is not an INN (10 or 12 digits)", f"{f}: «{s}» — не ИНН (10 или 12 цифр)")
    return s


async def resolve(conn: psycopg.AsyncConnection, principal: Principal, ref: Ref, field_: str,
                  code: str | None) -> tuple[int | None, int | None]:
    """(id, organisation id) of the object `code` names; Invalid when there is none the
    principal sees."""
    if code is None:
        return None, None
    org_col = "id" if ref.table == "organisations" else "org_id"
    cur = await conn.execute(sql.SQL("SELECT id, {o} FROM {t} WHERE {k} = %s").format(
        o=sql.Identifier(org_col), t=sql.Identifier(ref.table), k=sql.Identifier(ref.key)), (code,))
    row = await cur.fetchone()
    if row is None or not principal.sees_org(row[1]):
        raise Invalid(field_, f"{field_}: {ref.en} {code!r} does not exist", f"{field_}: {ref.ru} «{code}» не найден(а)")
    return row[0], row[1]


def _action(entity: Entity, creating: bool) -> Action:
    return Action.REGISTRY_ORGS if entity.name == "organisation" and creating else Action.REGISTRY_EDIT


async def save(conn: psycopg.AsyncConnection, principal: Principal, kind: str, key: Any, data: Mapping[str, Any],
               *, create: bool | None = None, comment: str | None = None) -> tuple[dict, bool]:
    """Create (`create=True`), update (`False`) or upsert (`None`, the file import) one
    object; returns its state and whether anything changed."""
    entity = ENTITIES[kind]
    key = v.code(entity.key, key)
    checks = {**entity.fields, **{r: (lambda f, x: v.code(f, x, required=False)) for r in entity.refs}}
    clean = v.collect(data, checks)
    principal.require(Action.REGISTRY_EDIT if kind != "organisation" or create is False else Action.REGISTRY_ORGS)
    async with conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(sql.SQL("SELECT * FROM {t} WHERE {k} = %s FOR UPDATE").format(
            t=sql.Identifier(entity.table), k=sql.Identifier(entity.key)), (key,))
        old = await cur.fetchone()
        own_org = old["id"] if old is not None and kind == "organisation" else (old or {}).get("org_id")
        if old is not None and not principal.sees_org(own_org):
            if create is False:
                _not_found(entity, key)
            raise Conflict(f"{entity.title_en} {key!r} is taken by another organisation",
                           f"{entity.title_ru} «{key}»: код занят другой организацией")
        if create is True and old is not None:
            raise Conflict(f"{entity.title_en} {key!r} already exists", f"{entity.title_ru} «{key}» уже существует")
        if create is False and old is None:
            _not_found(entity, key)
        principal.require(_action(entity, old is None))
        if old is None:
            missing = [f for f in entity.required if clean.get(f) is None]
            if "org" in missing and (principal.org_ids or any(clean.get(r) for r in entity.refs if r != "org")):
                missing.remove("org")  # an organisation's admin works in their own; a house brings its own
            if missing:
                raise v.combined([Invalid(f, f"{f} is required", f"{f}: обязательное поле") for f in missing])
        values: dict[str, Any] = {k: x for k, x in clean.items() if k in entity.fields}
        for name, ref in entity.refs.items():
            if name in clean:
                rid, rorg = await resolve(conn, principal, ref, name, clean[name])
                values[ref.column] = rid
                if ref is not ORG and rid is not None and "org" not in clean and old is None and "org" in entity.refs:
                    values["org_id"] = rorg  # a house brings its organisation
        if old is None and "org_id" not in values and "org" in entity.refs and principal.org_ids:
            values["org_id"] = min(principal.org_ids)
        target_org = values.get("org_id", own_org) if kind != "organisation" else own_org
        if kind != "organisation" and not principal.sees_org(target_org) and not principal.scope.everything:
            raise Invalid("org", "org: another organisation's objects cannot be made here",
                          "org: нельзя отнести объект к чужой организации")
        if kind == "account" and values.get("site_id") is not None:
            await _same_org(conn, values["site_id"], values.get("org_id", own_org))
        changed = {c: x for c, x in values.items() if old is None or old.get(c) != x}
        if old is None:
            cols = [entity.key, *changed]
            cur = await conn.execute(sql.SQL("INSERT INTO {t} ({c}) VALUES ({p}) RETURNING *").format(
                t=sql.Identifier(entity.table), c=sql.SQL(", ").join(map(sql.Identifier, cols)),
                p=sql.SQL(", ").join(sql.Placeholder() * len(cols))), [key, *changed.values()])
        elif changed:
            cur = await conn.execute(sql.SQL("UPDATE {t} SET {s} WHERE {k} = %s RETURNING *").format(
                t=sql.Identifier(entity.table), k=sql.Identifier(entity.key),
                s=sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in changed)),
                [*changed.values(), key])
        if old is None or changed:
            desc = [d.name for d in cur.description]
            new = dict(zip(desc, await cur.fetchone(), strict=True))
            await audit.record(conn, principal, f"registry.{kind}.{'create' if old is None else 'update'}",
                               kind, key, old=None if old is None else {c: old.get(c) for c in changed},
                               new={c: new.get(c) for c in (changed if old is not None else [entity.key, *changed])},
                               comment=comment)
            return _public(new), True
    return _public(old), False


async def get(conn: psycopg.AsyncConnection, principal: Principal, kind: str, key: str) -> dict:
    """One object with its references as codes (what its edit form shows)."""
    entity = ENTITIES[kind]
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql.SQL("SELECT * FROM {t} WHERE {k} = %s").format(
        t=sql.Identifier(entity.table), k=sql.Identifier(entity.key)), (key,))
    row = await cur.fetchone()
    if row is None or not principal.sees_org(row["id"] if kind == "organisation" else row.get("org_id")):
        _not_found(entity, key)
    out = _public(row)
    for name, ref in entity.refs.items():
        rid = row.get(ref.column)
        if rid is not None:
            cur2 = await conn.execute(sql.SQL("SELECT {k} FROM {t} WHERE id = %s").format(
                k=sql.Identifier(ref.key), t=sql.Identifier(ref.table)), (rid,))
            out[name] = (await cur2.fetchone())[0]
    return out


async def _same_org(conn: psycopg.AsyncConnection, site_id: int, org_id: int | None) -> None:
    cur = await conn.execute("SELECT org_id, code FROM sites WHERE id = %s", (site_id,))
    row = await cur.fetchone()
    if row and org_id is not None and row[0] is not None and row[0] != org_id:
        raise Invalid("house", f"house: {row[1]!r} belongs to another organisation",
                      f"house: дом «{row[1]}» относится к другой организации")


def _not_found(entity: Entity, key: str) -> Any:
    raise NotFound(f"{entity.title_en} {key!r} not found", f"{entity.title_ru} «{key}» не найден(а)")


def _public(row: dict | None) -> dict:
    return {k: x for k, x in (row or {}).items() if k not in ("health",)}
