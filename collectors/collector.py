"""The collector: subscribes to every configured node on every OPC UA endpoint and
writes canonical events to Redis through ``RedisSink`` (and so through the contract).
This module runs the endpoints; one endpoint's session loop is ``collectors.endpoint``,
its events (time order, flagged times, heartbeats, links) ``collectors.events``.

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
import logging
import os
import signal
from collections.abc import Iterable, Iterator, Mapping, Sequence

from collectors.buffer import StoreAndForwardBuffer
from collectors.endpoint import EndpointCollector
from collectors.options import CollectorOptions, EndpointStats
from collectors.sink import RedisSink
from config.settings import Settings
from domain.plant import Plant
from store.clients import async_client_for

__all__ = ["Collector", "CollectorOptions", "EndpointCollector", "EndpointStats", "make_sink",
           "quiet_asyncua_logging", "run_collector"]

log = logging.getLogger(__name__)

CANCEL_AGAIN_S = 0.5  # an endpoint's task still running this long after its cancellation is cancelled again


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
        """Collect until ``stop`` is set (or until cancelled). Each endpoint's task is
        cancelled until it ends: a cancellation can be lost in what an endpoint awaits
        (Python 3.11's ``asyncio.wait_for`` drops one that arrives as its awaitable completes,
        cpython#86296; asyncua avoids it in its requests, not in every wait), and the
        endpoint then went on collecting while the shutdown waited for it for ever."""
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(ep.run(), name=f"collector-{name}") for name, ep in self.endpoints.items()]
            await (stop or asyncio.Event()).wait()
            while pending := [task for task in tasks if not task.done()]:
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=CANCEL_AGAIN_S)

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
