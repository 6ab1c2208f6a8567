"""The collector: subscribes to every configured node on every OPC UA endpoint and
writes canonical events to Redis through ``RedisSink`` (and so through the contract).

Per endpoint (all endpoints concurrently, in an ``asyncio.TaskGroup``):

* connect with the endpoint's security (policy, mode, certificate, key; username with the
  password from the environment variable named by ``password_env``); with a ``trust_dir``
  the server's certificate must be in its trust list (``collectors.trust``): a refused
  one is logged once with its SHA-256 thumbprint and recorded for ``/api/health``;
* a node the server will not monitor (or whose id does not parse) is logged once, written
  as an event with the server's status and recorded in ``contract.nodes_key``; the rest
  of the endpoint is collected;
* one subscription with the endpoint's publishing interval, one monitored item per node
  with its sampling interval and a queue of ``queue_size`` values, ``DiscardOldest``:
  changes faster than the publishing interval are queued on the server and all arrive, in
  order; if a queue ever overflows, the oldest go and the latest value stays (a counter
  loses no production, only intermediate values);
* every notification becomes an ``Event`` (see ``collectors.mapping``);
* each notification's events sorted by time (stable: a notification lists each node's
  values together, so values of different nodes that changed within one publishing
  interval would otherwise be out of time order);
* a ``hb`` event per machine every ``plant.heartbeat_s`` while the session is healthy, a
  ``link`` "up"/"down" event per machine when the connection is made or lost (and "down"
  on shutdown): the engine treats link down or silence as unknown time. With ``source``
  or ``server`` timestamps these are stamped in the time base of the machine's data (see
  ``collectors.timebase``), and "up" waits for the machine's first data; with
  ``arrival`` timestamps they carry the wall clock;
* a value whose time is further ahead of the collector's clock than
  ``CollectorOptions.max_future_s``, or a change older than the stream's retention, is
  written with status ``BadTimestampFuture`` / ``BadTimestampTooOld`` (its own time and
  value kept) and never moves the time base (so neither heartbeats nor links), nor the
  live hash ("last data", "since"); initial values after subscribing carry the time of
  their node's last change and may be old (an idle machine's state, weeks unchanged);
* on a lost connection: reconnect with capped exponential backoff and subscribe again,
  logging the loss once (WARNING; with ``quiet_asyncua_logging`` at the entry point, no
  asyncua traceback) and the recovery once (INFO);
* a watchdog rebuilds a subscription that went silent (no data and no keep-alive for
  ``watchdog_factor`` keep-alive intervals); if that fails, the session is rebuilt.

``run_collector`` stops on SIGTERM or SIGINT (``handle_signals``) within about
``CollectorOptions.shutdown_s``: "link down" for every machine, a last write to Redis if
it answers, and whatever Redis has not taken stays in the store-and-forward files for the
next start (they are written ahead while Redis is down, so even ``kill -9`` loses at most
about ``RedisSink.journal_after_s`` of events).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import signal
import time
from collections.abc import Awaitable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto import security_policies
from asyncua.ua.uaerrors import UaError

from collectors.buffer import StoreAndForwardBuffer
from collectors.mapping import Binding, bindings_for, status_name, to_event
from collectors.sink import Backoff, RedisSink
from collectors.subscription import ItemSubscription
from collectors.timebase import MachineKey, TimeBase
from collectors.trust import ServerValidator, TrustList
from config.settings import Settings
from domain.contract import TIMESTAMP_FUTURE, TIMESTAMP_TOO_OLD, endpoint_field, live_field
from domain.model import GOOD_STATUS, Event, Signal
from domain.plant import Endpoint, Plant, TimestampSource
from store.clients import async_client_for

log = logging.getLogger(__name__)

_BY_TIME = attrgetter("ts")


@dataclass(frozen=True)
class CollectorOptions:
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    connect_timeout_s: float = 15.0
    request_timeout_s: float = 4.0  # per OPC UA request
    health_check_s: float = 1.0  # asyncua's probe of the server state
    keepalive_s: float | None = None  # default: min(plant.heartbeat_s, 10)
    watchdog_factor: float = 3.0  # silent for this many keep-alive intervals: rebuild
    items_per_call: int = 1000  # monitored items per CreateMonitoredItems request
    session_timeout_ms: int = 60_000
    redis_retry_initial_s: float = 0.25  # while Redis is unreachable: first retry after this
    redis_retry_max_s: float = 10.0  # ... doubling up to this
    max_future_s: float = 300.0  # values stamped further ahead of the collector's clock: BadTimestampFuture
    shutdown_s: float = 4.0  # on stop: close the sessions and write the last batch within about this


@dataclass
class EndpointStats:
    connects: int = 0
    notifications: int = 0
    outages: int = 0
    rebuilds: int = 0  # silent subscriptions rebuilt by the watchdog


class SessionLost(Exception):
    """The OPC UA session or its subscription is gone; reconnect."""


async def first_completed(*aws: Awaitable[object]) -> None:
    """Run awaitables until the first one ends; cancel the rest; re-raise its error."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


def _certificate_uri(path: str) -> str | None:
    """The application URI in a certificate's subjectAltName (servers check it)."""
    from cryptography import x509

    data = Path(path).read_bytes()
    try:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


class EndpointCollector:
    """One endpoint's session loop: connect, subscribe, forward, reconnect."""

    def __init__(
        self,
        plant: Plant,
        name: str,
        endpoint: Endpoint,
        sink: RedisSink,
        options: CollectorOptions,
        env: Mapping[str, str],
    ) -> None:
        self.plant = plant
        self.name = name
        self.endpoint = endpoint
        self.sink = sink
        self.options = options
        self.bindings = bindings_for(plant, name)
        self.by_handle = {i + 1: b for i, b in enumerate(self.bindings)}
        self.machines = sorted({(b.line, b.machine) for b in self.bindings})
        self.password = self._password(env)
        self.stats = EndpointStats()
        self.connected = asyncio.Event()
        self._silence_s = 10.0
        self._lost_reason = ""
        self._refused_nodes: set[str] = set()
        self._outage_since: float | None = None
        self._attempts = 0
        self._reported_bad_nodes: set[str] = set()
        self._bad_since: dict[str, float] = {}  # node id -> when first refused
        self._invalid: list[tuple[int, str]] = []  # (handle, status) of node ids that do not parse
        self._validator: ServerValidator | None = None
        self._refused_certificate: str | None = None  # thumbprint reported
        self._unverified_logged = False
        # The time base of hb/link (None: the wall clock, for ``arrival`` timestamps).
        self._timebase = None if endpoint.timestamp is TimestampSource.ARRIVAL else TimeBase()
        self._sub: ItemSubscription | None = None
        self._fresh: set[int] = set()  # handles whose initial value has not arrived yet
        self._fresh_since = 0.0
        self._waiting: set[MachineKey] = set()  # machines whose "link up" waits for their first data
        self._held: dict[MachineKey, list[tuple[Binding, str]]] = {}  # refused nodes of waiting machines
        self._up_at = 0.0
        self._retention_s = plant.retention.stream_days * 86400.0
        self._reported_times: set[tuple[str, str, str]] = set()  # (machine, signal, status) logged

    def _password(self, env: Mapping[str, str]) -> str | None:
        sec = self.endpoint.security
        if not sec.username:
            return None
        if not sec.password_env or sec.password_env not in env:
            raise ValueError(
                f"endpoint {self.name}: the password for user {sec.username!r} is read from the environment "
                f"variable {sec.password_env!r}, which is not set"
            )
        return env[sec.password_env]

    # --- the session loop ------------------------------------------------------------

    async def run(self) -> None:
        """Collect until cancelled."""
        backoff = Backoff(self.options.reconnect_initial_s, self.options.reconnect_max_s)
        try:
            while True:
                try:
                    await self._session(backoff)
                    reason = "session ended"
                except (SessionLost, OSError, TimeoutError, UaError) as exc:
                    reason = str(exc) or type(exc).__name__
                except Exception as exc:  # asyncua raises a few other types on broken connections
                    reason = f"{type(exc).__name__}: {exc}"
                    log.debug("endpoint %s: session error", self.name, exc_info=True)
                self._certificate_refused()
                self._lost(reason)
                await asyncio.sleep(backoff.next_delay())
        finally:
            if self.connected.is_set():
                self._link("down")
                self.connected.clear()

    def _lost(self, reason: str) -> None:
        self._attempts += 1
        if self.connected.is_set():
            self.connected.clear()
            self._outage_since = time.monotonic()
            self._attempts = 1
            self.stats.outages += 1
            self._link("down")
            log.warning("endpoint %s (%s): connection lost (%s); reconnecting with backoff up to %g s",
                        self.name, self.endpoint.url, reason, self.options.reconnect_max_s)
        elif self._attempts == 1:
            log.warning("endpoint %s (%s): cannot connect (%s); retrying with backoff up to %g s",
                        self.name, self.endpoint.url, reason, self.options.reconnect_max_s)
        else:
            log.debug("endpoint %s: attempt %d failed: %s", self.name, self._attempts, reason)

    def _up(self, subscribed: int) -> None:
        if self._outage_since is not None:
            log.info("endpoint %s (%s): reconnected after %.1f s (%d attempts), %d nodes subscribed",
                        self.name, self.endpoint.url, time.monotonic() - self._outage_since, self._attempts, subscribed)
        else:
            log.info("endpoint %s (%s): connected, %d nodes subscribed", self.name, self.endpoint.url, subscribed)
        self._outage_since = None
        self._attempts = 0
        self.stats.connects += 1
        self.connected.set()
        self._up_at = time.monotonic()
        if self._timebase is None:
            self._link("up")
            return
        monitored = {(b.line, b.machine) for b in self.bindings if b.node_id not in self._refused_nodes}
        for key in sorted(self._waiting - monitored):  # no data will come: up now
            self._link_up(key, self._timebase.stamp(key, self._heard()))

    async def _session(self, backoff: Backoff) -> None:
        client = self._client()
        lost = asyncio.Event()
        self._lost_reason = ""

        async def on_lost(exc: Exception) -> None:
            lost.set()

        client.connection_lost_callback = on_lost
        try:
            async with asyncio.timeout(self.options.connect_timeout_s):
                await self._configure_security(client)
                await client.connect()  # closes its socket itself when a step fails
        except BaseException:
            client.disconnect_socket()  # but not when the timeout cancels it
            raise
        try:
            sub = self._sub = self._subscription(client, lost)
            if self._timebase is not None:
                self._fresh, self._fresh_since = set(self.by_handle), time.monotonic()
                self._waiting = set(self.machines)
                self._held = {}
            async with asyncio.timeout(self.options.connect_timeout_s):
                self._refused(await sub.create())
            self._certificate_accepted()
            self._silence_s = max(self.options.watchdog_factor * sub.keepalive_s, 1.0)
            self._up(len(self.bindings) - len(self._refused_nodes))
            backoff.reset()
            await first_completed(self._heartbeats(sub), self._watchdog(sub), self._until(lost))
        finally:
            await self._close(client, lost.is_set())

    def _client(self) -> Client:
        client = Client(self.endpoint.url, timeout=self.options.request_timeout_s,
                        watchdog_intervall=self.options.health_check_s)
        client.session_timeout = self.options.session_timeout_ms
        client.name = client.description = f"OEE collector ({self.plant.name})"
        return client

    async def _configure_security(self, client: Client) -> None:
        sec = self.endpoint.security
        if sec.username:
            client.set_user(sec.username)
            client.set_password(self.password or "")
        if sec.policy == "None":
            return
        if sec.trust_dir:
            self._validator = ServerValidator(TrustList(sec.trust_dir))
            client.certificate_validator = self._validator
        elif not sec.server_certificate and not self._unverified_logged:
            self._unverified_logged = True
            log.warning("endpoint %s: no trust_dir and no server_certificate: the server's certificate is not "
                        "verified (any server at %s is believed)", self.name, self.endpoint.url)
        assert sec.certificate and sec.private_key  # checked when the plant file is loaded
        uri = _certificate_uri(sec.certificate)
        if uri:
            client.application_uri = uri
        policy = getattr(security_policies, f"SecurityPolicy{sec.policy.replace('_', '')}")
        await client.set_security(
            policy, certificate=sec.certificate, private_key=sec.private_key,
            server_certificate=sec.server_certificate, mode=getattr(ua.MessageSecurityMode, sec.mode),
        )

    def _certificate_refused(self) -> None:
        """The server's certificate failed the trust list: say which (once per thumbprint)
        and how to trust it, in the log and in each line's ``contract.nodes_key``."""
        rejected = self._validator.rejected if self._validator is not None else None
        if rejected is None or rejected.thumbprint == self._refused_certificate:
            return
        self._refused_certificate = rejected.thumbprint
        trust = self._validator.trust if self._validator is not None else None
        hint = (f"compare the thumbprint with the server's own, then: python app.py trust accept {rejected.thumbprint}"
                f" (or copy the certificate into {trust.trusted_dir if trust else 'trusted/'})")
        if rejected.status != "BadCertificateUntrusted":
            hint = "the server's certificate itself is not acceptable (expired, wrong application URI or use)"
        log.warning("endpoint %s (%s): server certificate refused (%s), SHA-256 thumbprint %s, subject %s; %s",
                    self.name, self.endpoint.url, rejected.status, rejected.thumbprint,
                    rejected.cert.subject.rfc4514_string(), hint)
        for line in sorted({line for line, _ in self.machines}):
            self.sink.report(line, endpoint_field(self.name), {"endpoint": self.name, "status": rejected.status,
                                                     "thumbprint": rejected.thumbprint, "hint": hint,
                                                     "since": time.time()})

    def _certificate_accepted(self) -> None:
        if self._refused_certificate is None:
            return
        self._refused_certificate = None
        for line in sorted({line for line, _ in self.machines}):
            self.sink.report(line, endpoint_field(self.name), None)

    async def _until(self, lost: asyncio.Event) -> None:
        await lost.wait()
        raise SessionLost(self._lost_reason or "connection lost")

    async def _close(self, client: Client, transport_lost: bool) -> None:
        try:
            async with asyncio.timeout(self.options.shutdown_s / 2):
                if transport_lost:
                    await client.close_session()  # stops asyncua's tasks; the socket is gone already
                    client.disconnect_socket()
                else:
                    await client.disconnect()
        except Exception:  # tearing down a broken connection: nothing left to save
            log.debug("endpoint %s: error while closing the session", self.name, exc_info=True)
            client.disconnect_socket()

    # --- subscription ----------------------------------------------------------------

    def _subscription_parameters(self) -> ua.CreateSubscriptionParameters:
        interval_ms = float(self.endpoint.publishing_interval_ms)
        keepalive_s = self.options.keepalive_s or min(self.plant.heartbeat_s, 10.0)
        keepalive_count = max(1, math.ceil(keepalive_s * 1000 / interval_ms))
        lifetime_count = max(3 * keepalive_count, math.ceil(60_000 / interval_ms))
        return ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=interval_ms,
            RequestedLifetimeCount=lifetime_count,
            RequestedMaxKeepAliveCount=keepalive_count,
            MaxNotificationsPerPublish=0,
            PublishingEnabled=True,
            Priority=0,
        )

    def _item_request(self, handle: int, binding: Binding) -> ua.MonitoredItemCreateRequest:
        params = ua.MonitoringParameters(
            ClientHandle=handle,
            SamplingInterval=float(self.endpoint.sampling_interval_ms),
            QueueSize=self.endpoint.queue_size,
            DiscardOldest=True,
        )
        item = ua.ReadValueId(NodeId=ua.NodeId.from_string(binding.node_id), AttributeId=ua.AttributeIds.Value)
        return ua.MonitoredItemCreateRequest(
            ItemToMonitor=item, MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=params
        )

    def _subscription(self, client: Client, lost: asyncio.Event) -> ItemSubscription:
        def on_status(status: ua.StatusCode) -> None:
            if not status.is_good():
                self._lost_reason = f"server reported {status_name(status)}"
                lost.set()

        items = []
        self._invalid = []
        for handle, binding in self.by_handle.items():
            try:
                items.append(self._item_request(handle, binding))
            except (ValueError, TypeError, UaError):  # checked at load; a plant built in code may still carry one
                self._invalid.append((handle, "BadNodeIdInvalid"))
        return ItemSubscription(client.uaclient, self._subscription_parameters(), items, self._on_data, on_status,
                                self.options.items_per_call)

    def _refused(self, refused: Sequence[tuple[ua.MonitoredItemCreateRequest, ua.StatusCode]]) -> None:
        """Nodes the server would not monitor (and node ids that do not parse): logged once
        each (WARNING), an event with the status, and a record in the line's
        ``contract.nodes_key`` hash for ``/api/health``; the rest of the endpoint is
        collected. Nodes monitored now lose their record."""
        rejected = [*self._invalid, *((r.RequestedParameters.ClientHandle, status_name(st)) for r, st in refused)]
        self._refused_nodes = set()
        bad_handles = set()
        for handle, name in rejected:
            binding = self.by_handle[handle]
            bad_handles.add(handle)
            self._fresh.discard(handle)
            self._refused_nodes.add(binding.node_id)
            if binding.node_id not in self._reported_bad_nodes:
                self._reported_bad_nodes.add(binding.node_id)
                self._bad_since[binding.node_id] = time.time()
                log.warning("endpoint %s: cannot monitor %s (%s/%s %s): %s; the rest of the endpoint is collected",
                            self.name, binding.node_id, binding.line, binding.machine, binding.signal, name)
            self.sink.report(binding.line, live_field(binding.machine, binding.signal), {
                "endpoint": self.name, "node_id": binding.node_id, "status": name,
                "since": self._bad_since[binding.node_id]})
        for handle, binding in self.by_handle.items():
            if handle not in bad_handles:
                self._reported_bad_nodes.discard(binding.node_id)
                self.sink.report(binding.line, live_field(binding.machine, binding.signal), None)
        for handle, name in rejected:
            binding = self.by_handle[handle]
            key = (binding.line, binding.machine)
            if self._timebase is None:
                ts = time.time()
            elif key in self._waiting:  # written with its "link up"
                self._held.setdefault(key, []).append((binding, name))
                continue
            else:
                ts = self._timebase.stamp(key, self._heard())
            self.sink.put(Event(binding.line, binding.machine, binding.signal, None, name, ts))

    def _on_data(self, items: Sequence[ua.MonitoredItemNotification]) -> None:
        """One publish response's notifications (called by asyncua's publish loop): their
        events sorted by time (stable) go to the sink, after the "link up" of machines
        heard for the first time in this session."""
        arrival = time.time()
        by_handle, source = self.by_handle, self.endpoint.timestamp
        events: list[Event] = []
        append = events.append
        fresh = self._fresh
        initial: set[int] | None = None
        if fresh:  # the first values after (re)subscribing: initial values, not changes
            initial = set()
            for item in items:
                handle = item.ClientHandle
                binding = by_handle.get(handle)
                if binding is not None:
                    event = to_event(binding, item.Value, source, arrival)
                    append(event)
                    if handle in fresh:
                        fresh.discard(handle)
                        initial.add(id(event))
        else:
            for item in items:
                binding = by_handle.get(item.ClientHandle)
                if binding is not None:
                    append(to_event(binding, item.Value, source, arrival))
        self.stats.notifications += len(items)
        timebase = self._timebase
        if timebase is not None and events:  # arrival timestamps are all equal: already in order
            events.sort(key=_BY_TIME)
            trusted = events
            if (events[-1].ts > arrival + self.options.max_future_s
                    or events[0].ts < arrival - self._retention_s):
                events, trusted = self._flag_times(events, arrival, initial)
            ups = timebase.observe(trusted, arrival, initial, self._waiting)
            for key, ts in ups.items():
                self._link_up(key, ts)
        self.sink.put_all(events)

    def _flag_times(self, events: list[Event], arrival: float,
                    initial: set[int] | None) -> tuple[list[Event], list[Event]]:
        """``events`` with a Bad status on those whose time cannot be right, and those
        whose time can (for the time base). An initial value is old when its node has not
        changed for long: only changes are too old."""
        latest, oldest = arrival + self.options.max_future_s, arrival - self._retention_s
        out: list[Event] = []
        trusted: list[Event] = []
        for event in events:
            if event.ts > latest:
                status = TIMESTAMP_FUTURE
            elif event.ts < oldest and (initial is None or id(event) not in initial):
                status = TIMESTAMP_TOO_OLD
            else:
                out.append(event)
                trusted.append(event)
                continue
            out.append(dataclasses.replace(event, status=status))
            self._report_time(event, status, arrival)
        return out, trusted

    def _report_time(self, event: Event, status: str, arrival: float) -> None:
        key = (event.machine, str(event.signal), status)
        level = logging.DEBUG if key in self._reported_times else logging.WARNING
        self._reported_times.add(key)
        log.log(level, "endpoint %s: %s/%s %s stamped %+.0f s from the collector's clock: written as %s "
                "(tolerance +%g s, retention %g days)", self.name, event.line, event.machine, event.signal,
                event.ts - arrival, status, self.options.max_future_s, self._retention_s / 86400)

    async def _heartbeats(self, sub: ItemSubscription) -> None:
        while True:
            if sub.silent_for() < self._silence_s:
                self._beat(sub)
            await asyncio.sleep(self.plant.heartbeat_s)

    def _beat(self, sub: ItemSubscription) -> None:
        timebase, put = self._timebase, self.sink.put
        if timebase is None:
            now = time.time()
            for line, machine in self.machines:
                put(Event(line, machine, Signal.HEARTBEAT, None, GOOD_STATUS, now))
            return
        heard = sub.heard_until()
        now = time.monotonic()
        # A server that never sent some initial values: go on without them.
        if self._fresh and now - self._fresh_since >= self._silence_s:
            self._fresh.clear()
        if self._waiting and now - self._up_at >= self._silence_s:
            for key in sorted(self._waiting):
                self._link_up(key, timebase.stamp(key, heard))
        for key in self.machines:
            if key not in self._waiting:
                put(Event(key[0], key[1], Signal.HEARTBEAT, None, GOOD_STATUS, timebase.stamp(key, heard)))

    async def _watchdog(self, sub: ItemSubscription) -> None:
        while True:
            await asyncio.sleep(min(1.0, self._silence_s / 4))
            silent = sub.silent_for()
            if silent < self._silence_s:
                continue
            self.stats.rebuilds += 1
            log.warning("endpoint %s: subscription silent for %.1f s (no data, no keep-alive); rebuilding it",
                        self.name, silent)
            if self._timebase is not None:  # the new items send their initial values again
                self._fresh, self._fresh_since = set(self.by_handle), time.monotonic()
            try:
                async with asyncio.timeout(self.options.connect_timeout_s):
                    self._refused(await sub.rebuild())
            except Exception as exc:
                raise SessionLost(f"rebuilding the silent subscription failed: {exc!r}") from exc

    def _heard(self) -> float:
        """Wall time up to which the server's data has arrived (``ItemSubscription.heard_until``)."""
        return self._sub.heard_until() if self._sub is not None else time.time()

    def _link_up(self, key: MachineKey, ts: float) -> None:
        """A waiting machine's "link up" and the events of its refused nodes, at ``ts``."""
        self._waiting.discard(key)
        line, machine = key
        self.sink.put(Event(line, machine, Signal.LINK, "up", GOOD_STATUS, ts))
        for binding, status in self._held.pop(key, ()):
            self.sink.put(Event(line, machine, binding.signal, None, status, ts))

    def _link(self, value: str) -> None:
        """``link`` ``value`` for every machine. With a time base (only "down": "up" is
        ``_link_up``) only for the machines whose "up" was written."""
        timebase = self._timebase
        if timebase is None:
            now = time.time()
            for line, machine in self.machines:
                self.sink.put(Event(line, machine, Signal.LINK, value, GOOD_STATUS, now))
            return
        heard = self._heard()
        for key in self.machines:
            if key not in self._waiting:
                self.sink.put(Event(key[0], key[1], Signal.LINK, value, GOOD_STATUS, timebase.stamp(key, heard)))
        self._waiting.clear()
        self._held.clear()


class Collector:
    """All endpoints of a plant, each in its own task."""

    def __init__(self, plant: Plant, sink: RedisSink, options: CollectorOptions | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.plant = plant
        self.sink = sink
        options = options or CollectorOptions()
        env = os.environ if env is None else env
        self.endpoints = {
            name: EndpointCollector(plant, name, endpoint, sink, options, env)
            for name, endpoint in plant.endpoints.items()
        }
        self.endpoints = {name: ep for name, ep in self.endpoints.items() if ep.bindings}

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Collect until ``stop`` is set (or until cancelled)."""
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(ep.run(), name=f"collector-{name}") for name, ep in self.endpoints.items()]
            await (stop or asyncio.Event()).wait()
            for task in tasks:
                task.cancel()

    async def wait_connected(self, timeout_s: float = 30.0, names: Iterable[str] | None = None) -> None:
        """Until every (named) endpoint has a session and its subscription."""
        waiting: Sequence[EndpointCollector] = [self.endpoints[n] for n in (names or self.endpoints)]
        async with asyncio.timeout(timeout_s):
            for ep in waiting:
                await ep.connected.wait()


class _ConnectionDropNoise(logging.Filter):
    """asyncua's session logs a traceback (ERROR) when the connection drops under its
    publish loop, and a WARNING when the collector closes the session of a connection
    that is gone: the collector's own "connection lost" line says it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        dropped = record.exc_info is not None and isinstance(record.exc_info[1], ConnectionError)
        if dropped and message.startswith("Publish iteration crashed"):
            return False
        return not message.startswith("close_session was called but connection is closed")


class _SessionRefusedNoise(logging.Filter):
    """asyncua's client logs an ERROR for every refused CreateSession (an untrusted server
    certificate: once per retry); the collector says it once, with the thumbprint."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("create_session fault response")


def quiet_asyncua_logging(level: int = logging.WARNING) -> None:
    """For entry points that configure logging: asyncua logs every session step at INFO
    and a traceback (ERROR) when a server goes away; the collector already logs each loss
    and each recovery once. Raises asyncua's level to ``level`` and drops that noise
    (idempotent)."""
    logging.getLogger("asyncua").setLevel(level)
    session_log = logging.getLogger("asyncua.client.ua_session.UaSession")
    if not any(isinstance(f, _ConnectionDropNoise) for f in session_log.filters):
        session_log.addFilter(_ConnectionDropNoise())
    client_log = logging.getLogger("asyncua.client.client")
    if not any(isinstance(f, _SessionRefusedNoise) for f in client_log.filters):
        client_log.addFilter(_SessionRefusedNoise())


def make_sink(settings: Settings, options: CollectorOptions | None = None) -> RedisSink:
    """The Redis sink with its store-and-forward buffer under ``settings.data_dir``."""
    options = options or CollectorOptions()
    buffer = StoreAndForwardBuffer(settings.data_dir / "buffer", settings.buffer_disk_bytes)
    client = async_client_for(settings, "collector")
    return RedisSink(
        client, buffer, retention_s=settings.plant.retention.stream_days * 86400,
        retry_initial_s=options.redis_retry_initial_s, retry_max_s=options.redis_retry_max_s,
    )


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (the run loop then shuts down in order) while inside."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        log.info("%s received: stopping the collector", signum.name)
        stop.set()

    handled = (signal.SIGTERM, signal.SIGINT)
    for signum in handled:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


async def run_collector(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    options: CollectorOptions | None = None,
    env: Mapping[str, str] | None = None,
    started: asyncio.Future[Collector] | None = None,
    handle_signals: bool = False,
) -> None:
    """Collect every endpoint of ``settings.plant`` into ``settings.redis_url`` until ``stop``
    (or, with ``handle_signals``, SIGTERM or SIGINT: for the main thread of a process).

    Stopping takes about ``options.shutdown_s`` at most, Redis up or down. ``started``
    (optional) receives the running ``Collector`` (tests use it to wait for the
    subscriptions and read statistics).
    """
    options = options or CollectorOptions()
    stop = stop or asyncio.Event()
    sink = make_sink(settings, options)
    collector = Collector(settings.plant, sink, options, env)
    if started is not None:
        started.set_result(collector)
    with _stop_on_signals(stop) if handle_signals else contextlib.nullcontext():
        try:
            async with asyncio.TaskGroup() as tg:
                sink_task = tg.create_task(sink.run(), name="redis-sink")
                await collector.run(stop)
                sink_task.cancel()
        finally:
            await sink.close(timeout_s=options.shutdown_s / 2)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(0.5):
                    await sink.client.aclose()
