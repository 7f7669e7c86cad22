"""Commands from the head-end on `…/cmd`, each answered on `…/cmd/result`.

Every command gets exactly one result (ok with a result object, or an error
that says what was wrong). A command redelivered by the broker (QoS 1, same
id) is answered again from the cache, not executed twice — a relay is not
switched twice because the uplink flickered.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from askue.contract.payloads import (
    SCHEMA_VERSION,
    Command,
    CommandResult,
    PayloadError,
    decode_command,
    encode,
)
from askue.drivers.errors import DriverError

if TYPE_CHECKING:
    from askue.gateway.service import Gateway

log = logging.getLogger("askue.gateway.cmd")

DEFAULT_TIMEOUT_S = 120.0


class CommandError(ValueError):
    """A command the gateway cannot carry out as given (unknown meter, bad argument)."""


def _arg_time(args: dict[str, Any], name: str) -> datetime:
    raw = args.get(name)
    if not isinstance(raw, str):
        raise CommandError(f"argument {name!r} is required: an ISO 8601 time with offset, e.g. 2026-11-01T00:00:00Z")
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"argument {name!r}={raw!r} is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise CommandError(f"argument {name!r}={raw!r} needs a UTC offset (e.g. Z or +03:00)")
    return t


def _arg_meter(args: dict[str, Any]) -> str:
    m = args.get("meter_id")
    if not isinstance(m, str) or not m:
        raise CommandError("argument 'meter_id' is required (the meter's id from the gateway config)")
    return m


class Commands:
    def __init__(self, gateway: Gateway, cache_size: int = 256):
        self.gw = gateway
        self._done: OrderedDict[str, bytes] = OrderedDict()
        self._running: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task] = set()
        self.cache_size = cache_size
        self.executed = 0
        self.failed = 0

    def handle(self, payload: bytes) -> None:
        t = asyncio.create_task(self._handle(payload))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _handle(self, payload: bytes) -> None:
        try:
            cmd = decode_command(payload)
        except PayloadError as e:
            cid = _peek_id(payload)
            log.warning("command rejected: %s", e)
            if cid:
                self._publish(CommandResult(v=SCHEMA_VERSION, id=cid, cmd=_peek(payload, "cmd") or "?", ok=False,
                                            finished_at=_now(), error=str(e)))
            return
        if cmd.id in self._done:
            log.info("command %s (%s) delivered again: repeating its result", cmd.id, cmd.cmd)
            self.gw.publish_result(self._done[cmd.id])
            return
        if cmd.id in self._running:
            await self._running[cmd.id].wait()  # redelivered while running: answer again when done
            if cmd.id in self._done:
                self.gw.publish_result(self._done[cmd.id])
            return
        self._running[cmd.id] = asyncio.Event()
        try:
            log.info("command %s: %s %s", cmd.id, cmd.cmd, cmd.args)
            now = self.gw.now()
            if cmd.expires_at is not None and now >= cmd.expires_at:
                self.failed += 1
                log.warning("command %s (%s) expired at %s (gateway clock %s): not carried out", cmd.id, cmd.cmd,
                            cmd.expires_at.isoformat(), now.isoformat())
                self._publish(CommandResult(v=SCHEMA_VERSION, id=cmd.id, cmd=cmd.cmd, ok=False, finished_at=now,
                                            error=f"Expired: the command expired at {cmd.expires_at.isoformat()} "
                                                  f"(gateway clock {now.isoformat()}); not carried out"))
                return
            try:
                result = await self.execute(cmd)
                res = CommandResult(v=SCHEMA_VERSION, id=cmd.id, cmd=cmd.cmd, ok=True, finished_at=_now(),
                                    result=result)
                self.executed += 1
            except Exception as e:  # noqa: BLE001 - every command gets a result, whatever happened
                self.failed += 1
                if isinstance(e, TimeoutError):
                    msg = "timed out (raise args.timeout_s if the meter is slow)"
                elif isinstance(e, CommandError):
                    msg = str(e)
                else:
                    msg = f"{type(e).__name__}: {e}"
                if not isinstance(e, CommandError | DriverError | TimeoutError):
                    log.exception("command %s (%s) failed unexpectedly", cmd.id, cmd.cmd)
                log.warning("command %s (%s) failed: %s", cmd.id, cmd.cmd, msg)
                res = CommandResult(v=SCHEMA_VERSION, id=cmd.id, cmd=cmd.cmd, ok=False, finished_at=_now(),
                                    error=msg)
            self._publish(res)
        finally:
            self._running.pop(cmd.id).set()

    def _publish(self, res: CommandResult) -> None:
        payload = encode(res)
        self._done[res.id] = payload
        while len(self._done) > self.cache_size:
            self._done.popitem(last=False)
        self.gw.publish_result(payload)

    async def execute(self, cmd: Command) -> dict[str, Any]:
        a = cmd.args
        timeout = a.get("timeout_s", DEFAULT_TIMEOUT_S)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
            raise CommandError("argument 'timeout_s' must be a number of seconds in (0, 3600]")
        if cmd.cmd == "reload_config":
            return await self.gw.reload()
        if cmd.cmd == "poll_now":
            kinds = a.get("kinds")
            if kinds is not None and (not isinstance(kinds, list) or
                                      not set(kinds) <= {"register", "interval", "instant", "events"}):
                raise CommandError("argument 'kinds' must be a list of register, interval, instant, events")
            ids = [_arg_meter(a)] if "meter_id" in a else self.gw.meter_ids()
            futs = {mid: self.gw.submit(mid, "poll", {"kinds": kinds}) for mid in ids}
            done = await _gather(futs, timeout)
            return {"meters": done, "polled": sum(1 for r in done.values() if "error" not in r)}
        meter_id = _arg_meter(a)
        if cmd.cmd == "read_profile":
            start, end = _arg_time(a, "start"), _arg_time(a, "end")
            if end <= start:
                raise CommandError(f"'end' ({end.isoformat()}) must be after 'start' ({start.isoformat()})")
            op, args = "read_profile", {"start": start, "end": end}
        elif cmd.cmd == "read_clock":
            op, args = "read_clock", {}
        elif cmd.cmd == "set_clock":
            op, args = "set_clock", {"time": _arg_time(a, "time")}
        elif cmd.cmd == "sync_clock":
            op, args = "sync_clock", {}
        elif cmd.cmd in ("relay_disconnect", "relay_reconnect"):
            op, args = "relay", {"connect": cmd.cmd == "relay_reconnect"}
        else:  # the contract's Literal makes this unreachable for decoded commands
            raise CommandError(f"unknown command {cmd.cmd!r}")
        fut = self.gw.submit(meter_id, op, args)
        result = await asyncio.wait_for(fut, timeout)
        return result or {}


async def _gather(futs: dict[str, asyncio.Future], timeout: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    done, pending = await asyncio.wait(list(futs.values()), timeout=timeout) if futs else (set(), set())
    for mid, f in futs.items():
        if f in pending:
            f.cancel()
            out[mid] = {"error": "timed out"}
        elif f.cancelled():
            out[mid] = {"error": "cancelled"}
        elif f.exception() is not None:
            e = f.exception()
            out[mid] = {"error": f"{type(e).__name__}: {e}"}
        else:
            out[mid] = f.result() or {}
    return out


def _now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


def _peek(payload: bytes, key: str) -> str | None:
    try:
        obj = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None
    v = obj.get(key) if isinstance(obj, dict) else None
    return v if isinstance(v, str) else None


def _peek_id(payload: bytes) -> str | None:
    cid = _peek(payload, "id")
    if cid and 0 < len(cid) <= 64 and cid[0].isalnum() and all(c.isalnum() or c in "_.:-" for c in cid):
        return cid
    return None
