"""One worker per bus: polls its meters on schedule, serialises the line, stores what it reads.

A serial (RS-485) bus has one lane: one request on the line at a time, with the
configured gap between frames. A TCP bus has `max_concurrent` lanes, each with
its own connection. A meter that times out or garbles is retried `retries`
times, then backed off exponentially, so it costs the others at most its own
timeout per attempt. The meter's identity (serial) is checked on connect and
again every `identity_check_s`; a mismatch is reported and the meter is not read.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from askue.contract.payloads import MeterStatus, Value
from askue.drivers.base import ARCHIVES, Capability, Driver, MeterSpec, Reading, get_driver
from askue.drivers.errors import DriverError, FrameError, IdentityMismatch, MeterTimeout, Unsupported
from askue.drivers.transport import SerialSettings, SerialTransport, TcpTransport, Transport
from askue.gateway.config import MeterSection, SerialBus, TcpBus
from askue.gateway.scheduler import PRIO_COMMAND, PRIORITY, Job, Scheduler, next_due
from askue.gateway.store import EVENTS_MARK, NON_PROFILE_MARKS, AsyncStore

log = logging.getLogger("askue.gateway.bus")

# Protocols without a session: connect() only verifies identity, so it is not repeated every poll.
SESSIONLESS = {"modbus", "mbus"}
PROFILE_SETTLE_S = 30.0  # poll a profile this long after the interval closed
DEFAULT_PERIOD_S = 1800
# Meter archives (day/month-start registers) ride on the register job: read when a new boundary
# may have passed since the newest one stored, at most once an hour while the meter has none yet.
ARCHIVE_DUE = {"day_start": timedelta(days=1), "month_start": timedelta(days=28)}
ARCHIVE_FIRST_READ = {"day_start": timedelta(days=1), "month_start": timedelta(days=32)}
ARCHIVE_RETRY_S = 3600.0
MONTH_ARCHIVE_BACKFILL_DAYS = 400  # month starts are billing values: reach back over a year


class _Paced:
    """Keeps at least `gap` seconds of silence between the last byte on the line and the next request."""

    gap: float = 0.0
    _last_io: float = 0.0

    async def write(self, data: bytes) -> None:
        wait = self._last_io + self.gap - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            await super().write(data)  # type: ignore[misc]
        finally:
            self._last_io = time.monotonic()

    async def read_exactly(self, n: int, timeout: float) -> bytes:
        # Same contract as Transport.read_exactly, with asyncio.timeout instead of wait_for:
        # no task per read, which is most of the polling loop's overhead at fleet scale.
        await self.ensure_open()  # type: ignore[attr-defined]
        reader = self._reader  # type: ignore[attr-defined]
        try:
            async with asyncio.timeout(timeout):
                data = await reader.readexactly(n)
        except asyncio.IncompleteReadError as e:
            await self.close()  # type: ignore[attr-defined]
            raise MeterTimeout(f"line closed after {len(e.partial)} of {n} bytes") from e
        except TimeoutError:
            raise MeterTimeout(f"no answer within {timeout:.2f} s (wanted {n} bytes)") from None
        finally:
            self._last_io = time.monotonic()
        self.bytes_in += len(data)  # type: ignore[attr-defined]
        return data

    async def read_until(self, terminator: bytes, timeout: float, max_len: int = 4096) -> bytes:
        try:
            return await super().read_until(terminator, timeout, max_len)  # type: ignore[misc]
        finally:
            self._last_io = time.monotonic()

    async def read_available(self, timeout: float, max_len: int = 4096) -> bytes:
        try:
            return await super().read_available(timeout, max_len)  # type: ignore[misc]
        finally:
            self._last_io = time.monotonic()


class PacedSerialTransport(_Paced, SerialTransport):
    pass


class PacedTcpTransport(_Paced, TcpTransport):
    pass


def make_transport(bus: SerialBus | TcpBus) -> Transport:
    t: Transport
    if isinstance(bus, SerialBus):
        t = PacedSerialTransport(bus.device, SerialSettings(bus.baudrate, bus.bytesize, bus.parity, bus.stopbits))
    else:
        t = PacedTcpTransport(bus.host, bus.port, connect_timeout=bus.timeout_s)
    t.gap = bus.gap_s  # type: ignore[attr-defined]
    return t


@dataclass
class BusStats:
    requests: int = 0
    ok: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    protocol_errors: int = 0
    identity_mismatches: int = 0
    values: int = 0
    busy_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


@dataclass
class MeterState:
    cfg: MeterSection
    failures: int = 0
    backoff_until: float = 0.0
    identity_checked: float | None = None  # monotonic time of the last good identity check
    identity_error: str | None = None
    serial: str | None = None
    last_contact: datetime | None = None
    last_error: str | None = None
    clock_drift_s: float | None = None
    clock_checked: float | None = None
    profile_read_to: datetime | None = None
    period_s: int | None = None
    polls: int = 0
    unsupported: set[str] = field(default_factory=set)  # scheduled kinds (and archives) the driver cannot read
    ct_ratio: float | None = None
    vt_ratio: float | None = None
    archive_checked: dict[str, float] = field(default_factory=dict)  # archive -> monotonic time of the last read
    archive_read_to: dict[str, datetime] = field(default_factory=dict)  # newest boundary read in this run

    def status(self) -> MeterStatus:
        return MeterStatus(meter_id=self.cfg.id, last_contact=self.last_contact, last_error=self.last_error,
                           ok=self.last_error is None, clock_drift_s=self.clock_drift_s, serial=self.serial,
                           ct_ratio=self.ct_ratio, vt_ratio=self.vt_ratio)


def meter_spec(m: MeterSection, timeout_s: float) -> MeterSpec:
    opts = dict(m.options)
    opts.setdefault("timeout", timeout_s)  # the drivers' option name
    opts.setdefault("resource", m.resource)
    return MeterSpec(id=m.id, driver=m.driver, address=m.address, serial=m.serial, model=m.model,
                     password=m.password, options=opts)


def to_values(meter_id: str, readings: list[Reading], received_at: datetime) -> list[Value]:
    return [Value(meter_id=meter_id, obis=r.obis, kind=str(r.kind), value=float(r.value), unit=r.unit,  # type: ignore[arg-type]
                  received_at=received_at, meter_time=r.meter_time, period_s=r.period_s, reasons=list(r.reasons),
                  archive=r.archive)
            for r in readings]


class BusWorker:
    def __init__(self, bus: SerialBus | TcpBus, meters: list[MeterSection], store: AsyncStore,
                 on_status: Callable[[str], None] = lambda meter_id: None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.bus = bus
        self.store = store
        self.on_status = on_status
        self.now = now
        self.stats = BusStats()
        self.sched = Scheduler()
        self.meters: dict[str, MeterState] = {}
        self._lanes: list[asyncio.Task] = []
        self._transports = [make_transport(bus) for _ in range(bus.lanes)]
        self._drivers: dict[str, Driver] = {}
        self._running = False
        for m in meters:
            self.add_meter(m)

    # ---- configuration ------------------------------------------------------------------
    def add_meter(self, m: MeterSection, start_now: bool = True) -> None:
        get_driver(m.driver)  # fail early: unknown or uninstalled protocol
        self.meters[m.id] = MeterState(m)
        t = time.time()
        for kind, period in m.schedules.periods().items():
            due = t if start_now else next_due(t, period, m.id)
            self.sched.add(Job(m.id, kind, PRIORITY[kind], due=due, periodic=True))

    def remove_meter(self, meter_id: str) -> None:
        for job in self.sched.remove_meter(meter_id):
            if job.future and not job.future.done():
                job.future.set_exception(KeyError(f"meter {meter_id!r} was removed from the config"))
        self.meters.pop(meter_id, None)
        self._drivers.pop(meter_id, None)

    def timeout_of(self, m: MeterSection) -> float:
        return m.timeout_s or self.bus.timeout_s

    # ---- running ------------------------------------------------------------------------
    def start(self) -> None:
        self._running = True
        self._lanes = [asyncio.create_task(self._lane(i), name=f"bus-{self.bus.id}-lane-{i}")
                       for i in range(len(self._transports))]

    async def stop(self) -> None:
        """Finish nothing new; cancel the lanes (a job in progress is abandoned, its values
        not yet stored are re-read next time), close the lines."""
        self._running = False
        for t in self._lanes:
            t.cancel()
        for t in self._lanes:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for job in self.sched.drain():
            if job.future and not job.future.done():
                job.future.set_exception(RuntimeError("gateway is shutting down"))
        for tr in self._transports:
            with contextlib.suppress(Exception):
                await tr.close()

    def submit(self, meter_id: str, op: str, args: dict[str, Any] | None = None) -> asyncio.Future:
        """Run an on-demand operation before any scheduled poll; the future gets its result."""
        if meter_id not in self.meters:
            raise KeyError(f"meter {meter_id!r} is not on bus {self.bus.id!r}")
        fut = asyncio.get_running_loop().create_future()
        self.sched.add(Job(meter_id, op, PRIO_COMMAND, due=time.time(), args=args or {}, future=fut))
        return fut

    async def _lane(self, lane: int) -> None:
        transport = self._transports[lane]
        while self._running:
            job = await self.sched.next_job()
            state = self.meters.get(job.meter_id)
            try:
                if state is None:
                    continue
                if job.periodic and time.time() < state.backoff_until:
                    continue  # rescheduled below; a backed-off meter costs the bus nothing
                t0 = time.monotonic()
                try:
                    result = await self._run_job(lane, transport, state, job)
                except asyncio.CancelledError:
                    if job.future and not job.future.done():
                        job.future.set_exception(RuntimeError(
                            f"bus {self.bus.id} stopped (config reload or shutdown) during the operation"))
                    raise
                except Exception as e:  # noqa: BLE001 - a lane must never die
                    if job.future and not job.future.done():
                        job.future.set_exception(e)
                    elif not isinstance(e, DriverError):
                        log.exception("meter %s bus %s: %s failed unexpectedly", job.meter_id, self.bus.id,
                                      job.kind)
                else:
                    if job.future and not job.future.done():
                        job.future.set_result(result)
                finally:
                    self.stats.busy_s += time.monotonic() - t0
            finally:
                self.sched.release(job.meter_id)
                if job.periodic and state is not None and self.meters.get(job.meter_id) is state:
                    self._reschedule(state, job)

    def _reschedule(self, state: MeterState, job: Job) -> None:
        period = state.cfg.schedules.periods().get(job.kind)
        if period is None or job.kind in state.unsupported:
            return
        now = time.time()
        if job.kind == "interval" and job.args.get("behind"):
            due = now  # catching up: again at once, but after every due job of higher priority
        else:
            settle = min(PROFILE_SETTLE_S, period / 10) if job.kind == "interval" else 0.0
            due = next_due(now, period, state.cfg.id, settle)
            due = max(due, state.backoff_until)
        self.sched.add(Job(job.meter_id, job.kind, job.prio, due=due, periodic=True))

    # ---- one job ------------------------------------------------------------------------
    def _driver(self, lane: int, transport: Transport, m: MeterSection) -> Driver:
        """One driver per meter; it talks over the transport of the lane running the job
        (a meter is served by one lane at a time, and sessions do not outlive a job
        except on session-less protocols, whose drivers keep no per-connection state)."""
        drv = self._drivers.get(m.id)
        if drv is None:
            drv = get_driver(m.driver)(transport, meter_spec(m, self.timeout_of(m)))
            self._drivers[m.id] = drv
        drv.transport = transport
        return drv

    async def _run_job(self, lane: int, transport: Transport, state: MeterState, job: Job) -> Any:
        m = state.cfg
        try:
            drv = self._driver(lane, transport, m)
        except DriverError as e:  # the driver refuses this meter's settings (model, address, options)
            self._failed(state, e, job, backoff_s=m.backoff_max_s)
            raise
        attempts = 1 + m.retries
        # A hard ceiling in case a driver loops: every request it makes has its own timeout.
        ceiling = self.timeout_of(m) * 20 + 5
        last: DriverError | None = None
        for attempt in range(attempts):
            transport.discard_input()
            self.stats.requests += 1
            try:
                async with asyncio.timeout(ceiling):  # no extra task per job, unlike wait_for
                    result = await self._session(drv, state, job)
            except TimeoutError:
                last = MeterTimeout(f"operation {job.kind} did not finish within {ceiling:.0f} s")
                self.stats.timeouts += 1
                await transport.close()
            except IdentityMismatch as e:
                self.stats.identity_mismatches += 1
                state.identity_checked = None
                state.identity_error = str(e)
                self._failed(state, e, job, backoff_s=m.backoff_max_s)
                raise
            except Unsupported as e:
                # Not the meter's fault: report to a command; a schedule the driver cannot serve
                # is switched off for this meter (once, with a log line), not retried forever.
                if job.future:
                    raise
                if job.kind not in state.unsupported:
                    log.warning("meter %s bus %s: %s schedule switched off: %s", m.id, self.bus.id, job.kind, e)
                state.unsupported.add(job.kind)
                return None
            except DriverError as e:
                last = e
                if isinstance(e, MeterTimeout):
                    self.stats.timeouts += 1
                elif isinstance(e, FrameError):
                    self.stats.crc_errors += 1
                else:
                    self.stats.protocol_errors += 1
                if not e.retry:
                    break
            else:
                self.stats.ok += 1
                self._succeeded(state)
                return result
            log.debug("meter %s bus %s: %s attempt %d/%d failed: %s", m.id, self.bus.id, job.kind,
                      attempt + 1, attempts, last)
        assert last is not None
        self._failed(state, last, job)
        raise last

    async def _session(self, drv: Driver, state: MeterState, job: Job) -> Any:
        m = state.cfg
        per_poll = m.driver not in SESSIONLESS
        mono = time.monotonic()
        if per_poll or state.identity_checked is None or mono - state.identity_checked > m.identity_check_s:
            ident = await drv.connect()
            drv.check_identity(ident.serial)  # drivers check too; this makes sure none forgets
            if state.serial is not None and state.serial != ident.serial:
                log.warning("meter %s bus %s: serial changed from %s to %s", m.id, self.bus.id,
                            state.serial, ident.serial)
            state.serial = ident.serial
            state.identity_checked = mono
            state.identity_error = None
            if (ident.ct_ratio, ident.vt_ratio) != (state.ct_ratio, state.vt_ratio):
                if state.ct_ratio is not None or state.vt_ratio is not None:
                    log.warning("meter %s bus %s: transformer ratios changed from %s/%s to %s/%s", m.id,
                                self.bus.id, state.ct_ratio, state.vt_ratio, ident.ct_ratio, ident.vt_ratio)
                state.ct_ratio, state.vt_ratio = ident.ct_ratio, ident.vt_ratio
                self.on_status(m.id)
        try:
            return await self._operate(drv, state, job)
        finally:
            if per_poll:
                with contextlib.suppress(DriverError, OSError):
                    await drv.close()

    async def _operate(self, drv: Driver, state: MeterState, job: Job) -> Any:
        m = state.cfg
        kind = job.kind
        caps = drv.capabilities
        if kind == "register":
            # Kept before the clock check: a line that dies between the two must not take the
            # registers already read with it.
            n = await self._keep(m.id, await drv.read_registers())
            await self._maybe_clock(drv, state)
            return n + await self._archive_step(drv, state)
        if kind == "instant":
            return await self._keep(m.id, await drv.read_instant())
        if kind == "events":
            since = self.store.store.ledger_for_meter(m.id).get(EVENTS_MARK)
            return await self._keep(m.id, await drv.read_events(since))
        if kind == "interval":
            return await self._profile_step(drv, state, job)
        if kind == "poll":
            # Default: what the meter is scheduled for; a meter polled only on demand gets its registers.
            kinds = job.args.get("kinds") or list(m.schedules.periods()) or ["register"]
            n = 0
            for k in kinds:
                if k == "interval" and Capability.PROFILE in caps:
                    n += await self._profile_step(drv, state, job)
                elif k == "register" and Capability.REGISTERS in caps:
                    n += await self._keep(m.id, await drv.read_registers())
                    n += await self._archive_step(drv, state)
                elif k == "instant" and Capability.INSTANT in caps:
                    n += await self._keep(m.id, await drv.read_instant())
                elif k == "events" and Capability.EVENTS in caps:
                    n += await self._keep(m.id, await drv.read_events(
                        self.store.store.ledger_for_meter(m.id).get(EVENTS_MARK)))
            return {"values": n}
        if kind == "read_profile":
            readings = await drv.read_profile(job.args["start"], job.args["end"])
            return {"values": await self._keep(m.id, readings)}
        if kind == "read_clock":
            meter_time = await drv.read_clock()
            self._note_clock(state, meter_time)
            return {"meter_time": meter_time.isoformat(), "drift_s": state.clock_drift_s}
        if kind == "set_clock":
            await drv.set_clock(job.args["time"])
            meter_time = await drv.read_clock() if Capability.CLOCK in caps else None
            if meter_time is not None:
                self._note_clock(state, meter_time)
            return {"meter_time": meter_time.isoformat() if meter_time else None, "drift_s": state.clock_drift_s}
        if kind == "sync_clock":
            await drv.set_clock(self.now())
            meter_time = await drv.read_clock() if Capability.CLOCK in caps else None
            if meter_time is not None:
                self._note_clock(state, meter_time)
            return {"meter_time": meter_time.isoformat() if meter_time else None, "drift_s": state.clock_drift_s}
        if kind == "relay":
            await drv.relay(bool(job.args["connect"]))
            return {"relay": "connected" if job.args["connect"] else "disconnected"}
        raise ValueError(f"unknown bus operation {kind!r}")

    def _note_clock(self, state: MeterState, meter_time: datetime) -> None:
        state.clock_drift_s = round((meter_time - self.now()).total_seconds(), 3)
        state.clock_checked = time.monotonic()

    async def _maybe_clock(self, drv: Driver, state: MeterState) -> None:
        m = state.cfg
        if m.clock_check_s is None or Capability.CLOCK not in drv.capabilities:
            return
        if state.clock_checked is not None and time.monotonic() - state.clock_checked < m.clock_check_s:
            return
        try:
            when = await drv.read_clock()
        except Unsupported as e:
            # The meter has no usable clock now (none in its answer, or one it marks invalid):
            # the values just read are kept, and the check waits for the next clock_check_s.
            state.clock_checked = time.monotonic()
            state.clock_drift_s = None
            log.info("meter %s bus %s: clock not checked: %s", m.id, self.bus.id, e)
            return
        self._note_clock(state, when)
        if abs(state.clock_drift_s or 0.0) > 30:
            log.warning("meter %s bus %s: clock drift %.1f s", m.id, self.bus.id, state.clock_drift_s)

    async def _profile_step(self, drv: Driver, state: MeterState, job: Job) -> int:
        """Read the next chunk of the load profile after what the store already holds (gap ledger).

        Start: the newest interval stored for this meter (survives restarts), else
        `profile_initial_days` back; never older than `profile_backfill_days`. One chunk per
        job; when still behind, the job is requeued at once behind due higher-priority jobs.
        """
        if Capability.PROFILE not in drv.capabilities:
            raise Unsupported(f"{drv.name}: load profile is not supported")
        m = state.cfg
        now = self.now() + timedelta(seconds=state.clock_drift_s or 0.0)
        stored = [t for obis, t in self.store.store.ledger_for_meter(m.id).items() if obis not in NON_PROFILE_MARKS]
        mark = max(stored + ([state.profile_read_to] if state.profile_read_to else []), default=None)
        oldest = now - timedelta(days=m.profile_backfill_days)
        start = max(mark + timedelta(seconds=1), oldest) if mark else now - timedelta(days=m.profile_initial_days)
        period = state.period_s or DEFAULT_PERIOD_S
        end = min(now, start + timedelta(seconds=period * m.profile_chunk_intervals))
        if end <= start:
            job.args["behind"] = False
            return 0
        readings = await drv.read_profile(start, end)
        periods = [r.period_s for r in readings if r.period_s]
        if periods:
            state.period_s = periods[-1]
        n = await self._keep(m.id, readings)
        state.profile_read_to = max(end - timedelta(seconds=1), start)
        job.args["behind"] = end < now - timedelta(seconds=period)
        return n

    async def _archive_step(self, drv: Driver, state: MeterState) -> int:
        """Read the day- and month-start registers the meter stored since the newest boundary in
        the store (gap ledger), so days missed in an outage are backfilled from meter memory.

        First read (nothing stored): the latest day start and month start. Never older than
        `profile_backfill_days` for days, MONTH_ARCHIVE_BACKFILL_DAYS for months."""
        if Capability.ARCHIVES not in drv.capabilities:
            return 0
        m = state.cfg
        now = self.now() + timedelta(seconds=state.clock_drift_s or 0.0)
        ledger = self.store.store.ledger_for_meter(m.id)
        n = 0
        for archive in ARCHIVES:
            if archive in state.unsupported:
                continue
            marks = [t for t in (ledger.get(archive), state.archive_read_to.get(archive)) if t is not None]
            mark = max(marks, default=None)
            if mark is not None and now - mark < ARCHIVE_DUE[archive]:
                continue  # the next boundary has not come yet
            checked = state.archive_checked.get(archive)
            if checked is not None and time.monotonic() - checked < ARCHIVE_RETRY_S:
                continue
            backfill = m.profile_backfill_days if archive == "day_start" else max(
                m.profile_backfill_days, MONTH_ARCHIVE_BACKFILL_DAYS)
            start = mark + timedelta(seconds=1) if mark else now - ARCHIVE_FIRST_READ[archive]
            start = max(start, now - timedelta(days=backfill))
            try:
                readings = await drv.read_archive(archive, start, now + timedelta(seconds=1))
            except Unsupported as e:
                # The meter lacks this archive: its registers are still read, the archive no more.
                log.warning("meter %s bus %s: %s archive switched off: %s", m.id, self.bus.id, archive, e)
                state.unsupported.add(archive)
                continue
            except DriverError as e:
                # The registers of this poll are kept; the archive is asked again later.
                log.warning("meter %s bus %s: %s archive not read: %s (next try in %.0f s)", m.id, self.bus.id,
                            archive, e, ARCHIVE_RETRY_S)
                state.archive_checked[archive] = time.monotonic()
                continue
            state.archive_checked[archive] = time.monotonic()
            times = [r.meter_time for r in readings if r.meter_time is not None]
            if times:
                state.archive_read_to[archive] = max(times)
            n += await self._keep(m.id, readings)
        return n

    async def _keep(self, meter_id: str, readings: list[Reading]) -> int:
        if not readings:
            return 0
        values = to_values(meter_id, readings, self.now())
        self.stats.values += len(values)
        await self.store.put(values)
        return len(values)

    def _succeeded(self, state: MeterState) -> None:
        changed = state.last_error is not None or state.last_contact is None
        if state.failures:
            log.info("meter %s bus %s: answering again after %d failed attempts", state.cfg.id, self.bus.id,
                     state.failures)
        state.failures = 0
        state.backoff_until = 0.0
        state.last_error = None
        state.last_contact = self.now()
        state.polls += 1
        if changed:
            self.on_status(state.cfg.id)

    def _failed(self, state: MeterState, err: Exception, job: Job, backoff_s: float | None = None) -> None:
        m = state.cfg
        state.failures += 1
        delay = backoff_s or min(m.backoff_max_s, self.timeout_of(m) * 5 * 2 ** min(state.failures - 1, 16))
        state.backoff_until = time.time() + delay
        msg = f"{type(err).__name__}: {err}"
        if msg != state.last_error:
            log.warning("meter %s bus %s: %s failed: %s (next try in %.0f s)", m.id, self.bus.id, job.kind, msg,
                        delay)
        state.last_error = msg
        self.on_status(m.id)
