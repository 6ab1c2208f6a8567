"""Durable by default, loud when not: the embedded Redis keeps everything across restarts
(AOF), every part's check says when a Redis would lose data, and ``/api/health`` reports
data the worker found lost, the durability check, and a sane undelivered age."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from api import create_api_router
from api.context import config_of
from domain import contract
from store import live
from store.durability import assess, check_at_start, durability_of
from store.embedded import EmbeddedRedis
from store.reader import PlantReader
from tests.history import line_history, write_events
from tests.store_support import HOUR, RECENT, run_worker_until_drained, two_machine_plant
from tests.support import Client, RedisServer, api_app, free_port, redis_binary

PLANT = two_machine_plant()
START = RECENT + 5 * HOUR
END = RECENT + 7 * HOUR
NOW = END + 5


# --- the embedded Redis keeps its data -----------------------------------------------------

def everything(client: redis.Redis) -> dict[str, Any]:
    """Every key's type, content and whether it expires, and each stream's consumer groups."""
    out: dict[str, Any] = {}
    for key in sorted(client.scan_iter(count=1000)):
        kind = client.type(key).decode()
        if kind == "stream":
            groups = [(g["name"], g["last-delivered-id"], g["pending"]) for g in client.xinfo_groups(key)]
            content: Any = (client.xrange(key), groups)
        elif kind == "hash":
            content = client.hgetall(key)
        elif kind == "zset":
            content = client.zrange(key, 0, -1, withscores=True)
        elif kind == "string":
            content = client.get(key)
        elif kind == "set":
            content = sorted(client.smembers(key))
        else:
            content = client.lrange(key, 0, -1)
        out[key.decode()] = (kind, content, client.ttl(key) > 0)
    return out


def count(state: dict[str, Any], marker: str) -> int:
    return sum(1 for key in state if marker in key)


def history_with_rollups(client: redis.Redis) -> dict[str, Any]:
    """Two hours of a line written like a collector, rolled up by the worker; all keys."""
    written = write_events(client, line_history(PLANT, "L1", START, END, seed=3, power_every_s=10.0))
    run_worker_until_drained(client, PLANT, NOW)
    state = everything(client)
    stream = contract.events_key("L1")
    assert state[stream][0] == "stream" and len(state[stream][1][0]) == written
    assert count(state, ":min") > 0 and count(state, ":hour:") > 0 and contract.stops_key("L1") in state
    return state


def aof_written(client: redis.Redis) -> bool:
    """Everything acknowledged is in the AOF file (the OS has it; a killed process loses nothing)."""
    info = client.info("persistence")
    return bool(info["aof_enabled"]) and info["aof_buffer_length"] == 0 and not info["aof_rewrite_in_progress"]


def wait_for(condition: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["stop", "kill -9"])
def test_a_restart_of_the_embedded_redis_keeps_streams_and_rollups(tmp_path: Path, how: str) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    client = redis.Redis.from_url(server.start())
    try:
        before = history_with_rollups(client)
        assert durability_of(client).ok
        if how == "stop":
            server.stop()  # SIGTERM: Redis flushes and fsyncs the AOF
        else:
            wait_for(lambda: aof_written(client))
            assert server.proc is not None
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(10)
        client.close()
        again = EmbeddedRedis(tmp_path / "redis")
        client = redis.Redis.from_url(again.start())
        server = again
        after = everything(client)
        stream = contract.events_key("L1")
        assert len(after[stream][1][0]) == len(before[stream][1][0])
        assert count(after, ":min") == count(before, ":min") and count(after, ":hour:") == count(before, ":hour:")
        assert after == before
    finally:
        client.close()
        server.stop()


def test_an_old_data_directory_with_only_an_rdb_snapshot_is_kept(tmp_path: Path) -> None:
    """Data directories of earlier versions (RDB, no AOF): a server started with AOF on
    would load the empty AOF and ignore the snapshot."""
    data_dir = tmp_path / "redis"
    data_dir.mkdir()
    port = free_port()
    old = subprocess.Popen([redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
                            "--dbfilename", "demo.rdb", "--save", "", "--appendonly", "no"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    try:
        wait_for(lambda: _answers(client))
        before = history_with_rollups(client)
        client.save()
    finally:
        client.close()
        old.terminate()
        old.wait(10)
    assert not (data_dir / "appendonly.aof").exists()
    for _ in range(2):  # the first start turns the snapshot into an AOF; the second loads that
        server = EmbeddedRedis(data_dir)
        client = redis.Redis.from_url(server.start())
        try:
            assert everything(client) == before
            assert client.config_get("appendonly") == {"appendonly": "yes"}
        finally:
            client.close()
            server.stop()


def test_a_server_left_behind_by_a_killed_run_is_shut_down_first(tmp_path: Path) -> None:
    """``python app.py`` killed hard leaves its Redis running (own session: Ctrl-C does not
    reach it); the next start shuts it down (it flushes its AOF) instead of a second server
    appending to the same file."""
    first = EmbeddedRedis(tmp_path / "redis")
    client = redis.Redis.from_url(first.start())
    assert first.proc is not None and os.getsid(first.proc.pid) != os.getsid(0)
    try:
        before = history_with_rollups(client)
    finally:
        client.close()
    second = EmbeddedRedis(tmp_path / "redis")  # the first object is "gone": no stop()
    client = redis.Redis.from_url(second.start())
    try:
        assert first.proc.wait(30) == 0
        assert everything(client) == before
    finally:
        client.close()
        second.stop()
        first.stop()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


# --- the check at start --------------------------------------------------------------------

@pytest.mark.parametrize(
    ("aof", "save", "policy", "persistent", "warned"),
    [
        (True, "", "noeviction", True, []),
        (False, "3600 1 300 100", "noeviction", True, []),
        (True, "3600 1", "noeviction", True, []),
        (False, "", "noeviction", False, ["persistence is off"]),
        (False, "  ", "noeviction", False, ["persistence is off"]),
        (True, "", "allkeys-lru", True, ["allkeys-lru"]),
        (True, "", "volatile-ttl", True, ["volatile-ttl"]),
        (False, "", "allkeys-random", False, ["persistence is off", "allkeys-random"]),
        (None, None, "noeviction", None, ["could not check Redis persistence"]),
        (False, None, "noeviction", None, ["could not check Redis persistence"]),
        (True, None, None, True, ["could not check the Redis eviction policy"]),
        (None, None, None, None, ["could not check Redis persistence", "could not check the Redis eviction"]),
    ],
)
def test_assess(aof: bool | None, save: str | None, policy: str | None, persistent: bool | None,
                warned: list[str]) -> None:
    got = assess("config", aof=aof, aof_fsync="everysec", rdb_save=save, eviction_policy=policy,
                 maxmemory_bytes=0)
    assert got.persistent is persistent
    assert len(got.warnings) == len(warned)
    for warning, expected in zip(got.warnings, warned, strict=True):
        assert expected in warning
    assert got.ok is (not warned)


@pytest.fixture
def private_redis(restartable_redis: RedisServer) -> Iterator[redis.Redis]:
    """A server of its own: the test changes its configuration."""
    client = redis.Redis.from_url(restartable_redis.url)
    yield client
    client.close()


def aof_on(client: redis.Redis) -> None:
    """AOF on, and its first rewrite done (Redis 6 refuses to shut down while it runs)."""
    client.config_set("appendonly", "yes")
    wait_for(lambda: aof_written(client) and not client.info("persistence")["aof_rewrite_scheduled"])


def test_check_warns_when_persistence_is_off(private_redis: redis.Redis, restartable_redis: RedisServer,
                                             caplog: pytest.LogCaptureFixture) -> None:
    private_redis.config_set("appendonly", "no")
    private_redis.config_set("save", "")
    with caplog.at_level(logging.INFO, logger="store.durability"):
        got = check_at_start(restartable_redis.url, "collector")
    assert got.source == "config" and got.persistent is False and not got.ok
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("collector: Redis persistence is off")


def test_check_warns_when_keys_can_be_evicted(private_redis: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    aof_on(private_redis)
    private_redis.config_set("maxmemory-policy", "allkeys-lru")
    private_redis.config_set("maxmemory", str(512 * 1024**2))
    with caplog.at_level(logging.INFO, logger="store.durability"):
        got = check_at_start(private_redis, "rollup worker")
    assert got.persistent is True and got.eviction_policy == "allkeys-lru"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "allkeys-lru" in warnings[0] and "noeviction" in warnings[0]
    assert str(512 * 1024**2) in warnings[0]


def test_check_is_quiet_for_aof_and_noeviction(private_redis: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    aof_on(private_redis)
    private_redis.config_set("appendfsync", "everysec")
    private_redis.config_set("maxmemory-policy", "noeviction")
    with caplog.at_level(logging.INFO, logger="store.durability"):
        got = check_at_start(private_redis, "dashboard")
    assert got.ok and got.aof is True and got.aof_fsync == "everysec" and got.warnings == ()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("keeps its data" in r.getMessage() for r in caplog.records)


def test_check_without_config_reads_info_and_says_what_it_could_not_check(
        private_redis: redis.Redis, restartable_redis: RedisServer) -> None:
    """Managed Redis refuses CONFIG: INFO still tells AOF and the eviction policy."""
    private_redis.config_set("appendonly", "no")
    private_redis.config_set("maxmemory-policy", "allkeys-lru")
    private_redis.execute_command("ACL", "SETUSER", "app", "on", ">secret-for-test", "~*", "+@all", "-config")
    limited = redis.Redis(port=restartable_redis.port, username="app", password="secret-for-test")
    try:
        with pytest.raises(redis.ResponseError):
            limited.config_get("appendonly")
        got = durability_of(limited)
    finally:
        limited.close()
    assert got.source == "info" and got.aof is False and got.eviction_policy == "allkeys-lru"
    assert got.persistent is None and not got.checked and got.error and "CONFIG GET refused" in got.error
    assert any("could not check Redis persistence" in w for w in got.warnings)
    assert any("allkeys-lru" in w for w in got.warnings)


def test_check_of_an_unreachable_redis_says_so_and_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="store.durability"):
        got = check_at_start(f"redis://127.0.0.1:{free_port()}/0", "collector")
    assert got.source == "none" and not got.checked and got.error and "unreachable" in got.error
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


# --- /api/health ---------------------------------------------------------------------------

def api(client: redis.Redis, now: float = NOW) -> Client:
    app = api_app(create_api_router(PlantReader(client, PLANT), clock=lambda: now))
    return Client(app)


@pytest.fixture
def rolled_up(redis_client: redis.Redis) -> redis.Redis:
    write_events(redis_client, line_history(PLANT, "L1", START, END, seed=9, power_every_s=5.0))
    run_worker_until_drained(redis_client, PLANT, NOW)
    return redis_client


def test_health_is_not_ok_and_names_the_range_when_data_was_lost(rolled_up: redis.Redis) -> None:
    response = api(rolled_up).get("/api/health")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "ok" and body["lines"][0]["data_loss"] is None
    assert body["durability"]["checked"] is True and body["durability"]["eviction_policy"] == "noeviction"

    lost_from, lost_to = START + 600.0, START + 3000.5
    rolled_up.hset(contract.data_loss_key("L1"),
                   mapping={"from": str(lost_from), "to": str(lost_to), "detected": str(NOW - 60)})
    response = api(rolled_up).get("/api/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["ok"] is False and body["status"] == "data_lost"
    line = body["lines"][0]
    assert line["ok"] is False and line["status"] == "data_lost"
    assert line["data_loss"] == {"from": lost_from, "to": lost_to, "detected": NOW - 60}


def test_health_of_the_real_server_reports_data_loss_and_durability(redis_url: str,
                                                                    redis_client: redis.Redis) -> None:
    from app import create_dash
    from components.data import READER_KEY
    from config.settings import Settings

    redis_client.hset(contract.data_loss_key("L1"), mapping={"from": "1795590000", "to": "1795593600.25",
                                                             "detected": "1795600000"})
    app = create_dash(Settings(plant_path=Path("test"), plant=PLANT, redis_url=redis_url))
    try:
        response = Client(app.server).get("/api/health")
    finally:
        config_of(app.server)[READER_KEY].redis.close()
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "data_lost"
    assert body["lines"][0]["data_loss"] == {"from": 1795590000.0, "to": 1795593600.25, "detected": 1795600000.0}
    assert body["durability"]["source"] == "config" and body["durability"]["persistent"] is False  # no AOF here
    assert any("persistence is off" in w for w in body["durability"]["warnings"])


def server_seconds(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6


@pytest.mark.parametrize("delivered", [0, 2, 5])
def test_undelivered_is_the_age_of_the_oldest_waiting_entry(redis_client: redis.Redis, delivered: int) -> None:
    """A group that has delivered nothing yet waits for the whole stream (it used to read as
    ~1.8e9 s, the age of id 0); afterwards for the entry after the last delivered."""
    stream = contract.events_key("L1")
    t0_ms = int(server_seconds(redis_client) * 1000) - 3_600_000  # entries arrived an hour ago, a minute apart
    ids = [f"{t0_ms + i * 60_000}-0" for i in range(5)]
    for i, entry_id in enumerate(ids):
        redis_client.xadd(stream, {"m": "M1", "s": "hb", "v": "", "q": "Good", "t": str(t0_ms + i)}, id=entry_id)
    redis_client.xgroup_create(stream, "rollup", id="0")
    if delivered:
        redis_client.xreadgroup("rollup", "test", {stream: ">"}, count=delivered)
    before = server_seconds(redis_client)
    worker = api(redis_client).get("/api/health").get_json()["lines"][0]["worker"]
    after = server_seconds(redis_client)
    if delivered == len(ids):
        assert worker["undelivered_s"] == 0
        return
    oldest_waiting = (t0_ms + delivered * 60_000) / 1000.0
    assert before - oldest_waiting - 0.001 <= worker["undelivered_s"] <= after - oldest_waiting + 0.001


def test_undelivered_is_zero_for_a_new_group_with_nothing_waiting(redis_client: redis.Redis) -> None:
    stream = contract.events_key("L1")
    redis_client.xgroup_create(stream, "rollup", id="$", mkstream=True)
    assert live.health(redis_client, PLANT, NOW)["lines"][0]["worker"]["undelivered_s"] == 0
    redis_client.xadd(stream, {"m": "M1", "s": "hb", "v": "", "q": "Good", "t": "1"})
    redis_client.xgroup_setid(stream, "rollup", id="$")
    assert live.health(redis_client, PLANT, NOW)["lines"][0]["worker"]["undelivered_s"] == 0


def test_embedded_data_directory_stays_out_of_git() -> None:
    root = Path(__file__).resolve().parent.parent
    ignored = subprocess.run(["git", "check-ignore", "-q", "var/redis/appendonly.aof"], cwd=root, check=False)
    assert ignored.returncode == 0


def test_the_openapi_description_names_every_health_field(rolled_up: redis.Redis) -> None:
    from api.document import openapi_spec

    schemas = openapi_spec()["components"]["schemas"]
    schema, line_schema = schemas["Health"]["properties"], schemas["LineHealth"]["properties"]
    rolled_up.hset(contract.data_loss_key("L1"), mapping={"from": "1", "to": "2", "detected": "3"})
    body = api(rolled_up).get("/api/health").get_json()
    assert line_schema["worker"] == {"$ref": "#/components/schemas/WorkerHealth"}
    assert set(body) <= set(schema)
    assert set(body["durability"]) <= set(schemas["Durability"]["properties"])
    assert set(body["lines"][0]) <= set(line_schema)
    assert set(body["lines"][0]["worker"]) <= set(schemas["WorkerHealth"]["properties"])
    assert set(body["lines"][0]["data_loss"]) == set(schemas["DataLoss"]["properties"])
    assert body["status"] in schema["status"]["enum"] and body["lines"][0]["status"] in line_schema["status"]["enum"]
