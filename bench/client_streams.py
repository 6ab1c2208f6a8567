"""Screens that refresh as a browser does, polling or pushed, for ``bench_clients.py``.

``Clients(url, pages, lines, push=...)`` plays many ``dash_traffic.Page`` replays in one
asyncio loop. Polling: each page refreshes every ``refresh_s`` from a random phase, open
loop (a browser's ``dcc.Interval`` does not wait for the answers). Pushed: each page opens
``GET /api/live/events`` for its lines and, on every ``change`` event, refreshes as
``assets/push.js`` advances the page's Interval: at most one refresh in flight, at most one
every ``MIN_GAP_S``, changes meanwhile folded into the next refresh.

``browsers_on_push`` opens real Chromiums on push with the same measure taken inside the
page (a wrapped ``EventSource`` and ``fetch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from dash_traffic import Page

MIN_GAP_S = 0.05  # push.js: MIN_GAP_MS
EVENTS_PATH = "/api/live/events"


@dataclass
class Update:
    client: int
    kind: str
    latency: float  # polling: tick -> last answer; pushed: first change not yet shown -> last answer
    served: float  # the refresh's POSTs sent -> last answer


@dataclass
class Result:
    updates: list[Update] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    events: int = 0  # change events received in the window
    down: int = 0  # "status: down" events


# --- the event stream --------------------------------------------------------------------------

async def sse_events(base_url: str, lines: list[str]) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` of one ``/api/live/events`` stream until the server ends it."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 80)
    try:
        query = "&".join(f"line={quote(line)}" for line in lines)
        writer.write((f"GET {EVENTS_PATH}?{query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                      "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n").encode())
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status = int(head.split()[1])
        if status != 200:
            raise ConnectionError(f"event stream: HTTP {status}")
        chunked = "transfer-encoding: chunked" in head.lower()
        buffer = b""
        while True:
            if chunked:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    return
                piece = await reader.readexactly(size)
                await reader.readexactly(2)
            else:
                piece = await reader.read(65536)
                if not piece:
                    return
            buffer += piece.replace(b"\r\n", b"\n")
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                name, data = "message", []
                for line in block.decode().split("\n"):
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                if data:
                    yield name, "\n".join(data)
    finally:
        writer.close()


# --- the clients -------------------------------------------------------------------------------

class Clients:
    def __init__(self, url: str, pages: list[Page], lines: list[list[str]], *, push: bool,
                 refresh_s: float = 2.0) -> None:
        self.url, self.pages, self.lines, self.push, self.refresh_s = url, pages, lines, push, refresh_s
        self.result = Result()
        self.window = (float("inf"), float("inf"))  # loop times: measured from, to
        self.loop: asyncio.AbstractEventLoop | None = None

    def _in_window(self, t: float) -> bool:
        return self.window[0] <= t < self.window[1]

    async def run(self, warmup_s: float, seconds: float, opens: Callable[[], None],
                  closes: Callable[[], None]) -> Result:
        """Every client for ``warmup_s + seconds``; ``opens``/``closes`` run when the measured
        window begins and ends (CPU marks); updates triggered in the window are kept."""
        loop = self.loop = asyncio.get_running_loop()
        start = loop.time()
        self.window = (start + warmup_s, start + warmup_s + seconds)
        loop.call_at(self.window[0], opens)
        loop.call_at(self.window[1], closes)
        play = self._pushed if self.push else self._polling
        await asyncio.gather(*(play(i, page) for i, page in enumerate(self.pages)))
        # the last polls may all be answered before the window ends: ``closes`` must still run
        await asyncio.sleep(max(0.0, self.window[1] - loop.time()) + 0.01)
        for page in self.pages:
            page.pool.close()
            self.result.errors.extend(page.errors)
        return self.result

    async def _refresh(self, i: int, page: Page, since: float) -> None:
        assert self.loop is not None
        sent = self.loop.time()
        try:
            await page.refresh()
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.result.errors.append(f"{page.kind}: {exc!r}")
            return
        done = self.loop.time()
        if self._in_window(since):
            self.result.updates.append(Update(i, page.kind, done - since, done - sent))

    async def _polling(self, i: int, page: Page) -> None:
        assert self.loop is not None
        due = self.loop.time() + random.uniform(0, self.refresh_s)
        tasks = []
        while due < self.window[1]:
            await asyncio.sleep(max(0.0, due - self.loop.time()))
            tasks.append(asyncio.create_task(self._refresh(i, page, due)))  # open loop
            due += self.refresh_s
        await asyncio.gather(*tasks)

    async def _pushed(self, i: int, page: Page) -> None:
        assert self.loop is not None
        loop = self.loop
        wake = asyncio.Event()
        pending: list[float] = []  # when the first change not yet shown arrived

        async def listen() -> None:
            while True:
                try:
                    async for name, data in sse_events(self.url, self.lines[i]):
                        if name == "change":
                            if self._in_window(loop.time()):
                                self.result.events += 1
                            if not pending:
                                pending.append(loop.time())
                            wake.set()
                        elif name == "status" and not json.loads(data).get("up", True):
                            self.result.down += 1
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    self.result.errors.append(f"{page.kind} stream: {exc!r}")
                await asyncio.sleep(2.0)  # the browser's retry

        listener = asyncio.create_task(listen())
        last = 0.0
        try:
            while True:
                left = self.window[1] - loop.time()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), left)
                wake.clear()
                if not pending:
                    continue
                gap = last + MIN_GAP_S - loop.time()
                if gap > 0:
                    await asyncio.sleep(gap)
                since = pending.pop()
                last = loop.time()
                await self._refresh(i, page, since)  # one in flight; changes meanwhile wait
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener


# --- real browsers -----------------------------------------------------------------------------

MEASURE_JS = """(function () {
  var b = window.__bc = {pending: null, since: null, open: 0, lat: [], on: false};
  var ES = window.EventSource;
  if (ES) {
    var Wrapped = function (url, opts) {
      var es = new ES(url, opts);
      es.addEventListener('change', function () { if (b.pending === null) { b.pending = performance.now(); } });
      return es;
    };
    Wrapped.prototype = ES.prototype;
    Wrapped.CONNECTING = 0; Wrapped.OPEN = 1; Wrapped.CLOSED = 2;
    window.EventSource = Wrapped;
  }
  var f = window.fetch;
  window.fetch = function (input, init) {
    var url = typeof input === 'string' ? input : (input && input.url) || '';
    if (url.indexOf('_dash-update-component') < 0) { return f.apply(this, arguments); }
    if (b.open === 0) { b.since = b.pending; b.pending = null; }
    b.open += 1;
    var done = function () {
      b.open -= 1;
      if (b.open === 0 && b.since !== null) { if (b.on) { b.lat.push(performance.now() - b.since); } b.since = null; }
    };
    var p = f.apply(this, arguments);
    p.then(function (r) { r.clone().arrayBuffer().then(done, done); }, done);
    return p;
  };
})();"""


def browsers_on_push(chromium: Callable[[], Any], urls: list[str], seconds: float,
                     warmup_s: float) -> list[tuple[str, list[float]]]:
    """One Chromium per URL on push for ``warmup_s + seconds``; per page the seconds from
    the first change event not yet shown to the last answer of the refresh showing it."""
    drivers = []
    try:
        for url in urls:
            driver = chromium()
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": MEASURE_JS})
            driver.get(url)
            drivers.append((url, driver))
        deadline = time.monotonic() + 60
        for url, driver in drivers:
            while driver.execute_script(
                    "var el = document.querySelector('.live-push'); return el ? el.dataset.state : null;") != "up":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url}: push not up in 60 s")
                time.sleep(0.2)
        time.sleep(warmup_s)
        for _, driver in drivers:
            driver.execute_script("window.__bc.lat = []; window.__bc.on = true;")
        time.sleep(seconds)
        return [(url, [x / 1000 for x in driver.execute_script("window.__bc.on = false; return window.__bc.lat;")])
                for url, driver in drivers]
    finally:
        for _, driver in drivers:
            driver.quit()
