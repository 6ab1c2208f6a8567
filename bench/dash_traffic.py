"""The HTTP traffic of a dashboard page, as the browser makes it, and a client that replays it.

``capture(driver, url, tick_id)`` opens a page in Chromium with the network log on and
returns what the first load cost (bytes per kind of resource) and the
``_dash-update-component`` POSTs of one live refresh (the ``dcc.Interval`` ``tick_id``
firing), with their bodies exactly as the browser sent them.

``Page`` replays such a refresh the way dash-renderer does: the POSTs of one tick go out
together, ``n_intervals`` (and the panels' pulses) count up, and outputs that are also another callback's state
(e.g. the energy chart's ``en-power-state``) are fed back into the next bodies. It speaks
HTTP/1.1 over asyncio streams with keep-alive connections (up to 6 per page, like a
browser), so one process can play many screens without threads.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

UPDATE_PATH = "/_dash-update-component"
PULSE_SUFFIX = "-pulse"  # components.ranges.Live.pulse
MAX_CONNECTIONS = 6  # per host, as browsers do


# --- capture -------------------------------------------------------------------------------

@dataclass
class Request:
    request_id: str
    url: str
    method: str
    kind: str  # Chromium's resource type: Document, Script, Stylesheet, Font, Fetch, XHR, ...
    body: str | None
    wire_bytes: int = 0  # response as received, headers included (loadingFinished.encodedDataLength)
    started: float = 0.0  # monotonic seconds (Chromium's clock)
    finished: float | None = None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def json_body(self) -> dict[str, Any]:
        return json.loads(self.body or "{}")  # type: ignore[no-any-return]


@dataclass
class Capture:
    load: list[Request]  # everything before the first live refresh
    tick: list[Request]  # the POSTs of one live refresh
    complete: bool = True  # False: some callback a tick triggers never came before the timeout


def _network_events(driver: Any) -> list[dict[str, Any]]:
    out = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"].startswith("Network."):
            out.append(message)
    return out


def _is_tick(item: Any, tick_id: str) -> bool:
    """An input that carries the tick: the Interval's ``n_intervals``, or a panel gate's
    ``<panel>-pulse.data`` (``components.ranges.Live``: the browser passes ``n_intervals``
    on to the panel's server callback only while its range reaches now)."""
    if not isinstance(item, dict):
        return False
    return (item.get("id") == tick_id and item.get("property") == "n_intervals") or \
        (str(item.get("id", "")).endswith(PULSE_SUFFIX) and item.get("property") == "data")


def tick_number(body: dict[str, Any], tick_id: str) -> int | None:
    """The tick's number if this POST was triggered by ``tick_id`` (directly or through a
    panel's pulse), else None."""
    changed = body.get("changedPropIds") or []
    for item in body.get("inputs", []):
        if _is_tick(item, tick_id) and f"{item['id']}.{item['property']}" in changed:
            return int(item.get("value") or 0)
    return None


def capture(driver: Any, url: str, tick_id: str, ticks: int = 2, timeout_s: float = 30.0,
            occasional: frozenset[str] = frozenset()) -> Capture:
    """Loads ``url`` in a fresh tab state and waits for a live refresh: the first, from the
    ``ticks``-th on, that starts when the page's other callbacks (its panels' first draws,
    which the panels' live updates wait for) have answered. ``occasional``: callbacks
    (``callback_name``) a tick triggers only now and then (the range label: once a minute,
    its own quiet period): not waited for, and left out of the refresh captured."""
    driver.get_log("performance")  # drop what came before
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.get(url)
    requests: dict[str, Request] = {}
    deadline = time.monotonic() + timeout_s
    wanted: list[Request] = []
    complete = True
    done: list[int] = []
    triggered = tick_callbacks(url, tick_id)
    while time.monotonic() < deadline:
        for event in _network_events(driver):
            apply_event(requests, event, driver)
        expected = {name for name in triggered if name not in occasional and _on_page(driver, name)}
        rounds: dict[int, list[Request]] = {}
        for req in requests.values():
            n = tick_number(req.json_body(), tick_id) if req.path == UPDATE_PATH and req.body else None
            if n is not None:
                rounds.setdefault(n, []).append(req)
        done = [n for n, reqs in rounds.items() if all(r.finished is not None for r in reqs)]
        ticked = {r.request_id for reqs in rounds.values() for r in reqs}
        others = [r for r in requests.values() if r.path == UPDATE_PATH and r.request_id not in ticked]
        ready = [n for n in sorted(done)[ticks - 1:] if _after_others(rounds[n], others)
                 and expected <= {callback_name(r.json_body()) for r in rounds[n]}]
        if ready:
            wanted = rounds[ready[0]]
            break
        time.sleep(0.25)
    else:
        if len(done) < ticks:
            raise RuntimeError(f"{url}: no {ticks} finished refreshes by {tick_id} in {timeout_s:g} s")
        # some panel never drew (a loaded machine): the fullest refresh seen, marked incomplete
        wanted = rounds[max(sorted(done)[ticks - 1:], key=lambda n: (len(rounds[n]), n))]
        complete = False
    first_tick = min(r.started for reqs in rounds.values() for r in reqs)
    load = [r for r in requests.values() if r.started < first_tick]
    wanted = [r for r in wanted if callback_name(r.json_body()) not in occasional]
    return Capture(load, sorted(wanted, key=lambda r: r.body or ""), complete)


def tick_callbacks(url: str, tick_id: str) -> set[str]:
    """The server callbacks (``callback_name``) a tick of ``tick_id`` triggers, from the
    app's ``_dash-dependencies``: directly, or through a panel gate's pulse."""
    parts = urlsplit(url)
    with urllib.request.urlopen(f"{parts.scheme}://{parts.netloc}/_dash-dependencies", timeout=30) as resp:  # noqa: S310
        deps = json.loads(resp.read())
    tick = f"{tick_id}.n_intervals"

    def inputs(dep: dict[str, Any]) -> set[str]:
        return {f"{i['id']}.{i['property']}" for i in dep.get("inputs", []) if isinstance(i.get("id"), str)}

    pulses = {out for dep in deps if dep.get("clientside_function") and tick in inputs(dep)
              for out in dep["output"].strip(".").split("...") if out.endswith(f"{PULSE_SUFFIX}.data")}
    return {callback_name(dep) for dep in deps
            if not dep.get("clientside_function") and inputs(dep) & (pulses | {tick})}


def _on_page(driver: Any, name: str) -> bool:
    """The callback's first output is on the page (pattern-matching ids: assumed)."""
    ident = name.rsplit(".", 1)[0]
    script = "return !!document.getElementById(arguments[0]);"
    return ident.startswith("{") or bool(driver.execute_script(script, ident))


def _after_others(tick: list[Request], others: list[Request]) -> bool:
    """Every other callback request sent before ``tick`` started had its answer by then."""
    start = min(r.started for r in tick)
    return all(r.finished is not None and r.finished <= start for r in others if r.started < start)


def apply_event(requests: dict[str, Request], event: dict[str, Any], driver: Any) -> None:
    params = event["params"]
    rid = params.get("requestId")
    if event["method"] == "Network.requestWillBeSent":
        req = params["request"]
        body = req.get("postData")
        if body is None and req.get("hasPostData"):
            body = driver.execute_cdp_cmd("Network.getRequestPostData", {"requestId": rid})["postData"]
        requests[rid] = Request(rid, req["url"], req["method"], params.get("type", "Other"), body,
                                started=params["timestamp"])
    elif event["method"] == "Network.loadingFinished" and rid in requests:
        requests[rid].wire_bytes = int(params["encodedDataLength"])
        requests[rid].finished = params["timestamp"]
    elif event["method"] == "Network.loadingFailed" and rid in requests:  # aborted, refused: over too
        requests[rid].finished = params["timestamp"]


def refresh_bytes(driver: Any, tick_id: str) -> list[dict[str, int]]:
    """Per live refresh seen in the network log so far (oldest first): bytes received per
    callback (responses as received, headers included)."""
    requests: dict[str, Request] = {}
    for event in _network_events(driver):
        apply_event(requests, event, driver)
    rounds: dict[int, dict[str, int]] = {}
    for req in requests.values():
        n = tick_number(req.json_body(), tick_id) if req.path == UPDATE_PATH and req.body else None
        if n is not None and req.finished is not None:
            rounds.setdefault(n, {})[callback_name(req.json_body())] = req.wire_bytes
    return [rounds[n] for n in sorted(rounds)]


def callback_name(body: dict[str, Any]) -> str:
    """A short name for a callback: its first output (``oee-tiles.children`` ...)."""
    output = str(body.get("output", ""))
    first = output.strip(".").split("...")[0]
    return first or output


# --- replay ------------------------------------------------------------------------------

@dataclass
class Response:
    status: int
    body: bytes
    wire_bytes: int  # status line, headers and body


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    @property
    def usable(self) -> bool:
        return self.reader is not None and not self.reader.at_eof() and self.writer is not None \
            and not self.writer.is_closing()

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes) -> Response:
        assert self.reader is not None and self.writer is not None
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        await self.writer.drain()
        raw_head = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            data, extra = await self._chunked()
        else:
            data = await self.reader.readexactly(int(headers.get("content-length", "0")))
            extra = 0
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, data, len(raw_head) + len(data) + extra)

    async def _chunked(self) -> tuple[bytes, int]:
        assert self.reader is not None
        parts: list[bytes] = []
        framing = 0
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            framing += len(size_line) + 2
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts), framing
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


class Pool:
    """A browser's connections to one server: reused while open, at most ``MAX_CONNECTIONS``."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.idle: list[Connection] = []
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def post(self, path: str, body: bytes) -> tuple[Response, float]:
        """The response and the seconds from sending the request to its last byte (a
        connection the server closed meanwhile is replaced first, outside the timing)."""
        async with self.slots:
            conn = None
            while self.idle and conn is None:
                candidate = self.idle.pop()
                if candidate.usable:
                    conn = candidate
            for attempt in range(2):
                if conn is None:
                    conn = Connection(self.host, self.port)
                    await conn.open()
                started = time.perf_counter()
                try:
                    response = await conn.post(path, body)
                except (asyncio.IncompleteReadError, ConnectionError):
                    conn.close()
                    conn = None
                    if attempt:
                        raise
                    continue
                elapsed = time.perf_counter() - started
                if conn.usable:
                    self.idle.append(conn)
                return response, elapsed
        raise AssertionError("unreachable")

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


@dataclass
class Timed:
    callback: str
    seconds: float
    body_bytes: int
    wire_bytes: int
    request_bytes: int
    status: int
    outputs: dict[str, int] | None = None  # bytes per output (``output_sizes``), when asked for


@dataclass
class Page:
    """One open page: its refresh POSTs, replayed like dash-renderer replays them."""

    kind: str
    tick_id: str
    bodies: list[dict[str, Any]]
    pool: Pool
    tick: int = 0
    errors: list[str] = field(default_factory=list)
    quiet: dict[str, dict[str, Any]] = field(default_factory=dict)  # callback -> its last drawn record with quiet_ms
    seen: dict[str, float] = field(default_factory=dict)  # such records -> when the gate first saw them

    @classmethod
    def from_capture(cls, kind: str, tick_id: str, captured: list[Request], base_url: str) -> Page:
        return cls(kind, tick_id, [r.json_body() for r in captured], Pool(base_url))

    def next_bodies(self) -> list[tuple[str, bytes]]:
        self.tick += 1
        out = []
        now = time.monotonic()
        for body in self.bodies:
            if self._quiet(callback_name(body), now):
                continue
            for item in body.get("inputs", []):
                if _is_tick(item, self.tick_id):
                    item["value"] = (int(item.get("value") or 0)) + 1
            out.append((callback_name(body), json.dumps(body, separators=(",", ":")).encode()))
        return out

    async def post(self, name: str, payload: bytes, sizes: bool = False) -> Timed:
        response, seconds = await self.pool.post(UPDATE_PATH, payload)
        if response.status == 200:
            self._feed_back(response.body)
            if b'"quiet_ms"' in response.body:
                self._remember_quiet(name, response.body)
        elif response.status != 204:  # 204: PreventUpdate
            self.errors.append(f"{name}: HTTP {response.status} {response.body[:200]!r}")
        outputs = output_sizes(response.body) if sizes and response.status == 200 else None
        return Timed(name, seconds, len(response.body), response.wire_bytes, len(payload), response.status, outputs)

    async def refresh(self, sequential: bool = False, sizes: bool = False) -> tuple[list[Timed], float]:
        """One live refresh: every POST of a tick (together, as the browser sends them,
        unless ``sequential``); returns them and the seconds until the last answer."""
        started = time.perf_counter()
        payloads = self.next_bodies()
        if sequential:
            timed = [await self.post(name, payload, sizes) for name, payload in payloads]
        else:
            timed = list(await asyncio.gather(*(self.post(name, payload, sizes) for name, payload in payloads)))
        return timed, time.perf_counter() - started

    def _quiet(self, name: str, now: float) -> bool:
        """Whether the browser's gate (``oee.quiet`` in assets/screens.js) holds this
        callback's POST back: its last answer's live drawn record with ``quiet_ms`` (the
        range label) is not asked again until that long after the gate first saw it."""
        value = self.quiet.get(name)
        if not value or not value.get("live"):
            return False
        key = json.dumps(value, sort_keys=True)
        if key not in self.seen:
            if len(self.seen) > 32:
                self.seen = {}
            self.seen[key] = now
        return now - self.seen[key] < float(value["quiet_ms"]) / 1000

    def _remember_quiet(self, name: str, raw: bytes) -> None:
        answer = json.loads(raw).get("response") or {}
        for props in answer.values():
            for value in props.values() if isinstance(props, dict) else ():
                if isinstance(value, dict) and value.get("quiet_ms"):
                    self.quiet[name] = value

    def _read_ids(self) -> set[str]:
        return {item["id"] for body in self.bodies for key in ("state", "inputs") for item in body.get(key, [])
                if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"] != self.tick_id}

    def _feed_back(self, raw: bytes) -> None:
        """Outputs that other callbacks read as state or input take their new values."""
        if not any(f'"{ident}"'.encode() in raw for ident in self._read_ids()):
            return  # (parsing every answer would load the client more than the server)
        answer = json.loads(raw).get("response") or {}
        for body in self.bodies:
            for key in ("state", "inputs"):
                for item in body.get(key, []):
                    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                        continue
                    props = answer.get(item["id"])
                    if isinstance(props, dict) and item.get("property") in props:
                        item["value"] = props[item["property"]]


def output_sizes(raw: bytes) -> dict[str, int]:
    """Bytes of each output in a ``_dash-update-component`` answer (JSON of the value)."""
    answer = json.loads(raw).get("response") or {}
    sizes = {}
    for component, props in answer.items():
        for prop, value in props.items():
            sizes[f"{component}.{prop}"] = len(json.dumps(value, separators=(",", ":")))
    return sizes
