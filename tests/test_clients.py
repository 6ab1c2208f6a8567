"""The one client factory (``store.clients``): each part's client from the settings, with
its role's timeouts, against a real Redis."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from config.loader import DEMO_PLANT
from config.settings import Settings
from store.clients import async_client_for, client_for, node

ROLES = ("screen", "collector", "worker")


def _settings(redis_url: str | None, **env: str) -> Settings:
    return Settings.from_env({"REDIS_URL": redis_url or "", **env}, plant_path=DEMO_PLANT)


def _socket_timeout(client: Any) -> float:
    return float(client.connection_pool.connection_kwargs["socket_timeout"])


def test_each_role_gets_the_socket_timeout_of_the_settings(redis_url: str) -> None:
    settings = _settings(redis_url, REDIS_TIMEOUT_SCREEN_S="0.7", REDIS_TIMEOUT_COLLECTOR_S="4",
                         REDIS_TIMEOUT_WORKER_S="45.5")
    assert (settings.redis_timeout_screen_s, settings.redis_timeout_collector_s,
            settings.redis_timeout_worker_s) == (0.7, 4.0, 45.5)
    for role, expected in zip(ROLES, (0.7, 4.0, 45.5), strict=True):
        client = client_for(settings, role)
        try:
            assert client.ping()
            assert _socket_timeout(client) == expected
        finally:
            client.close()


def test_the_defaults_keep_screens_quick_and_writers_patient(redis_url: str) -> None:
    settings = _settings(redis_url)
    clients = {role: client_for(settings, role) for role in ROLES}
    timeouts = {role: _socket_timeout(client) for role, client in clients.items()}
    for client in clients.values():
        client.close()
    assert timeouts["screen"] < timeouts["collector"] < timeouts["worker"]
    assert timeouts["screen"] <= 2.0


def test_the_collector_client_is_asyncio_with_its_timeout(redis_url: str) -> None:
    settings = replace(_settings(redis_url), redis_timeout_collector_s=3.5)

    async def scenario() -> tuple[bool, float]:
        client = async_client_for(settings, "collector")
        try:
            return bool(await client.ping()), _socket_timeout(client)
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == (True, 3.5)


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_a_timeout_that_is_not_a_positive_number_stops_the_start(value: str) -> None:
    with pytest.raises(SystemExit, match="REDIS_TIMEOUT_WORKER_S"):
        _settings("redis://127.0.0.1:6379", REDIS_TIMEOUT_WORKER_S=value)


def test_without_a_url_the_error_says_what_to_set() -> None:
    settings = _settings(None)
    with pytest.raises(ValueError, match="REDIS_URL"):
        client_for(settings, "worker")


def test_a_node_client_talks_to_the_server_given(redis_url: str) -> None:
    client = node(redis_url.replace("redis://", "redis+cluster://", 1))  # the node itself, not a cluster
    try:
        assert client.ping()
        assert type(client).__name__ == "Redis"
    finally:
        client.close()
