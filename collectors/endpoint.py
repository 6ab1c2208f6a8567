"""One OPC UA endpoint's session loop (``EndpointCollector``): connect with the endpoint's
security, subscribe every node (one monitored item each), hand the notifications to its
``EndpointEvents`` (``collectors.events``), send heartbeats, rebuild a silent subscription
(the watchdog), and on a lost connection reconnect with capped exponential backoff, logging
the loss and the recovery once each. Nodes the server refuses and an untrusted server
certificate are logged once and recorded for ``/api/health`` (``contract.nodes_key``).
``collectors.collector`` describes the whole.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto import security_policies
from asyncua.ua.uaerrors import UaError

from collectors.events import EndpointEvents
from collectors.mapping import Binding, bindings_for, status_name
from collectors.options import CollectorOptions, EndpointStats
from collectors.sink import Backoff, RedisSink
from collectors.subscription import ItemSubscription
from collectors.trust import ServerValidator, TrustList
from domain.contract import endpoint_field, live_field
from domain.plant import Endpoint, Plant

log = logging.getLogger(__name__)


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
        self._sub: ItemSubscription | None = None
        self.events = EndpointEvents(plant, name, self.by_handle, endpoint.timestamp, sink, self.stats,
                                     options.max_future_s, self._heard)

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
                self.events.link("down")
                self.connected.clear()

    def _lost(self, reason: str) -> None:
        self._attempts += 1
        if self.connected.is_set():
            self.connected.clear()
            self._outage_since = time.monotonic()
            self._attempts = 1
            self.stats.outages += 1
            self.events.link("down")
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
        self.events.up({(b.line, b.machine) for b in self.bindings if b.node_id not in self._refused_nodes})

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
            self.events.subscribing()
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
        return ItemSubscription(client.uaclient, self._subscription_parameters(), items, self.events.on_data, on_status,
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
            self.events.refused(handle, self.by_handle[handle], name)

    async def _heartbeats(self, sub: ItemSubscription) -> None:
        while True:
            if sub.silent_for() < self._silence_s:
                self.events.beat(sub, self._silence_s)
            await asyncio.sleep(self.plant.heartbeat_s)

    async def _watchdog(self, sub: ItemSubscription) -> None:
        while True:
            await asyncio.sleep(min(1.0, self._silence_s / 4))
            silent = sub.silent_for()
            if silent < self._silence_s:
                continue
            self.stats.rebuilds += 1
            log.warning("endpoint %s: subscription silent for %.1f s (no data, no keep-alive); rebuilding it",
                        self.name, silent)
            self.events.resubscribing()
            try:
                async with asyncio.timeout(self.options.connect_timeout_s):
                    self._refused(await sub.rebuild())
            except Exception as exc:
                raise SessionLost(f"rebuilding the silent subscription failed: {exc!r}") from exc

    def _heard(self) -> float:
        """Wall time up to which the server's data has arrived (``ItemSubscription.heard_until``)."""
        return self._sub.heard_until() if self._sub is not None else time.time()
