"""One bad node does not take down its neighbours: a node the server does not have and a
node id that does not even parse are reported per machine and signal (one WARNING each,
``/api/health``'s ``bad_nodes``), and every other machine of the endpoint is collected
(a real asyncua server, the simulator; a real Redis)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
import redis

from collectors.sim.simulator import PlantSimulator
from config.loader import DEMO_PLANT, load_plant
from domain.contract import nodes_key
from domain.model import Signal
from domain.plant import Plant
from store.live import health
from tests.test_collector import collecting, fast_plant, stream, until, values


@pytest.fixture(scope="module")
def demo() -> Plant:
    return load_plant(DEMO_PLANT)


def with_nodes(plant: Plant, line_id: str, changes: dict[tuple[str, Signal], str]) -> Plant:
    """``plant`` with some node ids replaced (``model_copy``: not validated, as a plant built in code)."""
    lines = []
    for line in plant.lines:
        machines = []
        for m in line.machines:
            nodes = {**m.nodes, **{signal: node for (machine, signal), node in changes.items() if machine == m.id}}
            machines.append(m.model_copy(update={"nodes": nodes}) if line.id == line_id else m)
        lines.append(line.model_copy(update={"machines": machines}))
    return plant.model_copy(update={"lines": lines})


def test_a_missing_and_a_malformed_node_are_reported_and_the_rest_collected(
        demo: Plant, redis_client: redis.Redis, redis_url: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    served = fast_plant(demo, lines=["CM1"])
    missing, malformed = "ns=2;s=CM1.OP10.no_such_node", "not a node id"
    plant = with_nodes(served, "CM1", {("OP10", Signal.REASON): missing, ("OP20", Signal.GOOD): malformed})
    others = [m.id for m in plant.lines[0].machines if m.id not in ("OP10", "OP20")]
    assert others

    async def scenario() -> None:
        async with PlantSimulator(served, autorun=False) as sim, collecting(plant, redis_url, tmp_path) as collector:
            for i, machine in enumerate(others, start=1):
                await sim.write("CM1", machine, Signal.GOOD, 100 + i)
            await sim.write("CM1", "OP10", Signal.GOOD, 7)  # a good node of a machine with a bad one
            await until(lambda: all(values(stream(redis_client, "CM1"), m, Signal.GOOD)[-1:] == [100 + i]
                                    for i, m in enumerate(others, start=1)), what="the other machines' counts")
            await until(lambda: values(stream(redis_client, "CM1"), "OP10", Signal.GOOD)[-1:] == [7],
                        what="OP10's good count")
            await until(lambda: redis_client.hlen(nodes_key("CM1")) == 2, what="the bad nodes recorded")
            assert collector.endpoints["demo"].stats.connects == 1

    with caplog.at_level(logging.WARNING, logger="collectors.collector"):
        asyncio.run(scenario())

    warnings = [r.getMessage() for r in caplog.records if "cannot monitor" in r.getMessage()]
    assert len(warnings) == 2, warnings
    assert any(missing in w and "BadNodeIdUnknown" in w for w in warnings)
    assert any(malformed in w and "BadNodeIdInvalid" in w for w in warnings)

    report = health(redis_client, plant, time.time())
    line = next(line for line in report["lines"] if line["id"] == "CM1")
    bad = {(n["machine"], n["signal"]): (n["node_id"], n["status"]) for n in line["bad_nodes"]}
    assert bad == {("OP10", "reason"): (missing, "BadNodeIdUnknown"), ("OP20", "good"): (malformed, "BadNodeIdInvalid")}
    assert line["refused_endpoints"] == []

    # the machine's live state (``/api/lines``, the machine page) names its refused nodes too
    from components.machine_page import live_card
    from store.live import lines_now

    machines = {m["id"]: m for m in next(ln for ln in lines_now(redis_client, plant, time.time())["lines"]
                                          if ln["id"] == "CM1")["machines"]}
    assert [(n["signal"], n["status"]) for n in machines["OP10"]["bad_nodes"]] == [("reason", "BadNodeIdUnknown")]
    assert [(n["signal"], n["node_id"]) for n in machines["OP20"]["bad_nodes"]] == [("good", malformed)]
    assert all(machines[m]["bad_nodes"] == [] for m in machines if m not in ("OP10", "OP20"))
    card = str(live_card(machines["OP10"], time.time(), plant.timezone))
    assert "Not collected" in card and "BadNodeIdUnknown" in card
    assert "Not collected" not in str(live_card(machines["OP30"], time.time(), plant.timezone))


def test_a_node_that_works_again_loses_its_record(demo: Plant, redis_client: redis.Redis, redis_url: str,
                                                  tmp_path: Path) -> None:
    plant = fast_plant(demo, lines=["CM1"])
    redis_client.hset(nodes_key("CM1"), "OP10|reason", '{"node_id":"old","status":"BadNodeIdUnknown"}')

    async def scenario() -> None:
        async with PlantSimulator(plant, autorun=False) as sim, collecting(plant, redis_url, tmp_path):
            await sim.write("CM1", "OP10", Signal.GOOD, 5)
            await until(lambda: values(stream(redis_client, "CM1"), "OP10", Signal.GOOD)[-1:] == [5],
                        what="good count")
            await until(lambda: redis_client.hlen(nodes_key("CM1")) == 0, what="the stale record removed")

    asyncio.run(scenario())
    line = next(line for line in health(redis_client, plant, time.time())["lines"] if line["id"] == "CM1")
    assert line["bad_nodes"] == []
