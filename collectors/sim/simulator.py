"""A plant simulator: an asyncua ``Server`` serving every configured node of the plant
and behaving like the plant (see ``collectors.sim.machine_model`` for the raw values).

    async with PlantSimulator(plant, url="opc.tcp://127.0.0.1:4840/x/", seed=1, speed=60) as sim:
        ...
        sim.totals()[("BW1", "ST10")].good

Simulated time runs ``speed`` times faster than the wall clock, from ``start`` (default
now); every value is written with its simulated time as the SourceTimestamp and the wall
clock as the ServerTimestamp. Node ids are exactly the configured ones (``ns=2;s=...``);
the simulator registers namespaces so that index 2 (and any higher one used) exists.

For tests: ``write``/``set_value`` write any value with any status and timestamp,
``stop_server``/``start_server`` restart the OPC UA server on the same port while the
plant keeps producing, ``stall_subscriptions`` makes the server's subscriptions go
silent (a hung server), ``record=True`` keeps every value written per node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping
from contextlib import AsyncExitStack, suppress
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from asyncua import Server, ua

from collectors.sim.machine_model import MachineModel, Phase, Write, calendar_segments, raw_state_for, start_models
from collectors.sim.nodes import MachineTotals, OpcNode, PasswordUsers, cast_value, status_code, utc, variant_type_of
from config.settings import Settings
from domain.model import Signal
from domain.plant import Plant

log = logging.getLogger(__name__)

NodeKey = tuple[str, str, Signal]  # line, machine, signal


class PlantSimulator:
    """The OPC UA server of a simulated plant (or of some of its endpoints)."""

    def __init__(
        self,
        plant: Plant,
        *,
        endpoints: Collection[str] | None = None,
        url: str | None = None,
        seed: int = 1,
        speed: float = 1.0,
        start: float | None = None,
        tick_s: float = 0.1,
        autorun: bool = True,
        record: bool = False,
        node_types: Mapping[str, ua.VariantType] | None = None,
        certificate: Path | None = None,
        private_key: Path | None = None,
        users: Mapping[str, str] | None = None,
        initial_status: str = "Good",
        models: Mapping[tuple[str, str], MachineModel] | None = None,
    ) -> None:
        """
        :param endpoints: names of the plant endpoints to serve (default: all machines).
        :param url: where to listen (default: the first served endpoint's URL).
        :param speed: simulated seconds per wall-clock second.
        :param start: simulated start time, epoch seconds (default: now).
        :param autorun: start producing right away; else call ``start_plant()``.
        :param record: keep every value written per node (``history``).
        :param node_types: node id -> variant type, for nodes a PLC exposes in another type.
        :param certificate, private_key: serve Basic256Sha256 Sign/SignAndEncrypt only.
        :param users: username -> password; anonymous access is refused when given.
        :param initial_status: status of the nodes' first values (e.g. "BadWaitingForInitialData").
        :param models: machine models to continue from (``collectors.sim.history.DemoHistory``), by
            (line, machine); the served ones are caught up to ``start`` without writing what
            they do meanwhile, so counters and meters go on from their values. Default: new
            models started at ``start``.
        """
        self.plant = plant
        selected = set(endpoints) if endpoints is not None else set(plant.endpoints)
        unknown = selected - set(plant.endpoints)
        if unknown:
            raise ValueError(f"no such endpoint(s) in the plant: {', '.join(sorted(unknown))}")
        self.url = url or next(e.url for name, e in plant.endpoints.items() if name in selected)
        self.speed = speed
        self.tick_s = tick_s
        self.autorun = autorun
        self.record = record
        self.tz = ZoneInfo(plant.timezone)
        self._certificate = certificate
        self._private_key = private_key
        self._users = users
        self._node_types = dict(node_types or {})
        self._initial_status = initial_status
        self._t = time.time() if start is None else start
        meter_period = max(10.0, speed * tick_s)
        self.models: dict[tuple[str, str], MachineModel]
        if models is None:
            self.models = start_models(plant, self._t, seed, meter_period, selected)
        else:
            self.models = {key: model for key, model in models.items() if model.machine.endpoint in selected}
            for model in self.models.values():
                model.meter_period_s = meter_period
        self._nodes = self._plan_nodes()
        self._values: dict[NodeKey, ua.DataValue] = {}
        self._history: dict[NodeKey, list[tuple[object, float]]] = {}
        self.server: Server | None = None
        self._plant_task: asyncio.Task[None] | None = None
        self._wall0 = 0.0
        self._t0 = self._t
        self.writes = 0
        self._start_models()

    # --- setup -----------------------------------------------------------------------

    def _plan_nodes(self) -> dict[NodeKey, OpcNode]:
        nodes: dict[NodeKey, OpcNode] = {}
        seen: dict[ua.NodeId, NodeKey] = {}
        for (line_id, machine_id), model in self.models.items():
            state_raw = raw_state_for(model.state_map, Phase.RUNNING)
            for signal, text in model.machine.nodes.items():
                node_id = ua.NodeId.from_string(text)
                key = (line_id, machine_id, signal)
                if node_id in seen:
                    raise ValueError(f"node {text} is configured for both {seen[node_id]} and {key}")
                seen[node_id] = key
                vtype = self._node_types.get(text) or variant_type_of(model.machine, signal, state_raw)
                nodes[key] = OpcNode(node_id, vtype)
        return nodes

    def _start_models(self) -> None:
        """The nodes' first values: the models' state at the start time."""
        for (line_id, machine_id), model in self.models.items():
            if model.t < self._t:
                model.advance(calendar_segments(self.plant, self.tz, model.t, self._t))
            for write in model.snapshot():
                node = self._nodes[(line_id, machine_id, write.signal)]
                self._remember((line_id, machine_id, write.signal),
                               self._datavalue(node, write.value, self._initial_status, write.ts))

    async def __aenter__(self) -> PlantSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        await self.start_server()
        if self.autorun:
            self.start_plant()

    async def stop(self) -> None:
        await self.stop_plant()
        await self.stop_server()

    async def start_server(self) -> None:
        """Start (or restart) the OPC UA server; nodes start with the plant's current values."""
        if self.server is not None:
            return
        server = Server(user_manager=PasswordUsers(self._users) if self._users else None)
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name(f"{self.plant.name} (simulator)")
        await self._configure_security(server)
        built = await self._build_address_space(server)
        await server.start()
        self.server = server
        # the plant ran on while the server was built: what changed since, the server serves now
        for key, dv in list(self._values.items()):
            if built.get(key) is not dv:
                await server.write_attribute_value(self._nodes[key].node_id, dv)
        log.info("plant simulator serving %d nodes on %s", len(self._nodes), self.url)

    async def _configure_security(self, server: Server) -> None:
        if self._certificate and self._private_key:
            await server.load_certificate(str(self._certificate))
            await server.load_private_key(str(self._private_key))
            server.set_security_policy([
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ua.SecurityPolicyType.Basic256Sha256_Sign,
                ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
            ])
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        if self._users:
            server.set_identity_tokens([ua.UserNameIdentityToken])

    async def _build_address_space(self, server: Server) -> dict[NodeKey, ua.DataValue]:
        """Every node with its current value; returns the values it was given."""
        built: dict[NodeKey, ua.DataValue] = {}
        namespaces = max([2, *(n.node_id.NamespaceIndex for n in self._nodes.values())])
        for index in range(2, namespaces + 1):
            got = await server.register_namespace(f"urn:plant-simulator:{self.plant.name}:ns{index}")
            if got != index:
                raise RuntimeError(f"namespace index {got}, expected {index}")
        taken = {n.node_id for n in self._nodes.values()}
        objects = server.nodes.objects
        folders: dict[str, Any] = {}
        machines: dict[tuple[str, str], Any] = {}
        for (line_id, machine_id, signal), node in self._nodes.items():
            if line_id not in folders:
                folders[line_id] = await objects.add_folder(self._free_id(line_id, taken), ua.QualifiedName(line_id, 2))
            if (line_id, machine_id) not in machines:
                machines[(line_id, machine_id)] = await folders[line_id].add_object(
                    self._free_id(f"{line_id}.{machine_id}", taken), ua.QualifiedName(machine_id, 2))
            dv = built[(line_id, machine_id, signal)] = self._values[(line_id, machine_id, signal)]
            variable = await machines[(line_id, machine_id)].add_variable(
                node.node_id, ua.QualifiedName(str(signal), node.node_id.NamespaceIndex), dv.Value,
                varianttype=node.variant_type)
            await server.write_attribute_value(variable.nodeid, dv)
        return built

    @staticmethod
    def _free_id(text: str, taken: set[ua.NodeId]) -> ua.NodeId:
        node_id = ua.NodeId(ua.String(text), ua.Int16(2))
        while node_id in taken:
            text += "#"
            node_id = ua.NodeId(ua.String(text), ua.Int16(2))
        taken.add(node_id)
        return node_id

    async def stop_server(self) -> None:
        """Stop the OPC UA server (clients lose their connection); the plant keeps running."""
        server, self.server = self.server, None
        if server is not None:
            await server.stop()

    # --- the running plant -----------------------------------------------------------

    def now(self) -> float:
        """Simulated time, epoch seconds."""
        if self._plant_task is None:
            return self._t
        return self._t0 + (time.monotonic() - self._wall0) * self.speed

    def _default_time(self) -> float:
        """Simulated time while the plant runs; the wall clock for a plant driven by hand."""
        return self.now() if self._plant_task is not None else time.time()

    def start_plant(self) -> None:
        if self._plant_task is None:
            self._t0, self._wall0 = self._t, time.monotonic()
            self._plant_task = asyncio.create_task(self._run_plant(), name="plant-simulator")

    async def stop_plant(self) -> None:
        """Stop producing (after the tick in progress); values stay as they are."""
        task, self._plant_task = self._plant_task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _run_plant(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            await self.tick(self._t0 + (time.monotonic() - self._wall0) * self.speed)

    async def tick(self, until: float) -> None:
        """Advance every machine to simulated time ``until`` and write what changed."""
        if until <= self._t:
            return
        segments = calendar_segments(self.plant, self.tz, self._t, until)
        for (line_id, machine_id), model in self.models.items():
            for write in model.advance(segments):
                await self._apply((line_id, machine_id, write.signal), write)
        self._t = until

    async def _apply(self, key: NodeKey, write: Write) -> None:
        node = self._nodes[key]
        dv = self._datavalue(node, write.value, "Good", write.ts)
        self._remember(key, dv)
        if self.server is not None:
            await self.server.write_attribute_value(node.node_id, dv)

    def _datavalue(self, node: OpcNode, value: object, status: str | int | ua.StatusCode, ts: float) -> ua.DataValue:
        return ua.DataValue(
            Value=ua.Variant(cast_value(value, node.variant_type), node.variant_type),
            StatusCode=status_code(status),
            SourceTimestamp=utc(ts),
            ServerTimestamp=utc(time.time()),
        )

    def _remember(self, key: NodeKey, dv: ua.DataValue) -> None:
        self._values[key] = dv
        self.writes += 1
        if self.record:
            value = dv.Value.Value if dv.Value is not None else None
            ts = dv.SourceTimestamp.timestamp() if dv.SourceTimestamp else time.time()
            self._history.setdefault(key, []).append((value, ts))

    # --- for tests and scenarios -----------------------------------------------------

    def node_key(self, line: str, machine: str, signal: Signal | str) -> NodeKey:
        key = (line, machine, Signal(signal))
        if key not in self._nodes:
            raise KeyError(f"{line}/{machine} has no {signal} node on this simulator")
        return key

    async def write(
        self,
        line: str,
        machine: str,
        signal: Signal | str,
        value: object,
        *,
        status: str | int | ua.StatusCode = "Good",
        source_ts: float | None = None,
        server_ts: float | None = None,
        variant_type: ua.VariantType | None = None,
    ) -> None:
        """Write one value of a machine's signal, as a PLC would (any value, any status).

        ``source_ts`` defaults to the simulated time, ``server_ts`` to the wall clock.

        Raises ValueError if the server refuses it (a value of another type than the node's).
        """
        key = self.node_key(line, machine, signal)
        node = self._nodes[key]
        vtype = variant_type or node.variant_type
        if variant_type is None:
            value = cast_value(value, vtype)
        dv = ua.DataValue(
            Value=ua.Variant(value, vtype if value is not None else ua.VariantType.Null),
            StatusCode=status_code(status),
            SourceTimestamp=utc(source_ts if source_ts is not None else self._default_time()),
            ServerTimestamp=utc(server_ts if server_ts is not None else time.time()),
        )
        if self.server is not None:
            result = await self.server.iserver.aspace.write_attribute_value(node.node_id, ua.AttributeIds.Value, dv)
            if not result.is_good():
                raise ValueError(f"server refused {value!r} for {key}: {result.name}")
        self._remember(key, dv)

    async def set_value(self, node_id: str, value: object, **kwargs: Any) -> None:
        """``write`` addressed by the configured node id."""
        wanted = ua.NodeId.from_string(node_id)
        for key, node in self._nodes.items():
            if node.node_id == wanted:
                await self.write(*key, value, **kwargs)
                return
        raise KeyError(f"node {node_id} is not served by this simulator")

    def totals(self) -> dict[tuple[str, str], MachineTotals]:
        """Per (line, machine): the values its nodes show now."""
        def value(line_id: str, machine_id: str, signal: Signal) -> Any:
            dv = self._values.get((line_id, machine_id, signal))
            return dv.Value.Value if dv is not None and dv.Value is not None else None

        signals = (Signal.GOOD, Signal.REJECT, Signal.ENERGY, Signal.POWER, Signal.STATE, Signal.REASON)
        return {
            (line_id, machine_id): MachineTotals(*(value(line_id, machine_id, s) for s in signals))
            for (line_id, machine_id) in self.models
        }

    def history(self, line: str, machine: str, signal: Signal | str) -> list[tuple[object, float]]:
        """Every (value, source time) written to a node (needs ``record=True``)."""
        return list(self._history.get(self.node_key(line, machine, signal), []))

    def stall_subscriptions(self) -> int:
        """Fault injection: the server stops publishing (no data, no keep-alive) on every
        subscription it has now, as a hung server would. Returns how many."""
        if self.server is None:
            return 0
        subs = list(self.server.iserver.subscription_service.subscriptions.values())
        for sub in subs:
            task = sub._task  # noqa: SLF001 - there is no public way to hang a server
            if task is not None:
                task.cancel()
        return len(subs)


def retarget(plant: Plant, url: str, endpoints: Collection[str] | None = None, **endpoint_fields: Any) -> Plant:
    """The plant with its endpoints (or the named ones) at ``url``, other fields changed too
    (e.g. ``publishing_interval_ms=50``): tests and benchmarks run a plant on a free port."""
    names = set(plant.endpoints if endpoints is None else endpoints)
    updated = {
        name: ep.model_copy(update={"url": url, **endpoint_fields}) if name in names else ep
        for name, ep in plant.endpoints.items()
    }
    return plant.model_copy(update={"endpoints": updated})


async def run_simulator(
    settings: Settings, seed: int = 1, speed: float = 1.0, stop: asyncio.Event | None = None, **kwargs: Any
) -> None:
    """Serve ``settings.plant`` until ``stop`` is set: one server per distinct endpoint URL,
    bound to that URL's host and port. ``kwargs`` go to ``PlantSimulator``."""
    plant = settings.plant
    by_url: dict[str, list[str]] = {}
    for name, endpoint in plant.endpoints.items():
        by_url.setdefault(endpoint.url, []).append(name)
    async with AsyncExitStack() as stack:
        for url, names in by_url.items():
            await stack.enter_async_context(
                PlantSimulator(plant, endpoints=names, url=url, seed=seed, speed=speed, **kwargs))
        await (stop or asyncio.Event()).wait()
