"""Trusted OPC UA: the collector checks the server's certificate against the trust list
(``security.trust_dir``). A real asyncua server (the simulator) with a self-signed
certificate, SignAndEncrypt: untrusted -> refused, its certificate stored under
``pending/`` and reported (log and ``/api/health``) with its SHA-256 thumbprint; accepted
(``TrustList.accept``, what ``python app.py trust accept`` does) -> the next attempt
connects and collects."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
import redis
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from collectors.collector import Collector, run_collector
from collectors.sim.simulator import PlantSimulator
from collectors.trust import TrustList, load_certificate, thumbprint
from config.loader import DEMO_PLANT, load_plant
from config.settings import Settings
from domain.contract import nodes_key
from domain.model import Signal
from domain.plant import Plant, Security
from store.live import health
from tests.test_collector import FAST, fast_plant, stream, until, values


@pytest.fixture(scope="module")
def demo() -> Plant:
    return load_plant(DEMO_PLANT)


def certificates(directory: Path) -> dict[str, Path]:
    async def make() -> dict[str, Path]:
        paths = {}
        for who, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
            key, cert = directory / f"{who}-key.pem", directory / f"{who}-cert.der"
            uri = "urn:freeopcua:python:server" if who == "server" else "urn:test:client"  # the simulator's
            await setup_self_signed_certificate(key, cert, uri, "localhost", [usage],
                                                {"commonName": who})
            paths[f"{who}_cert"], paths[f"{who}_key"] = cert, key
        return paths

    return asyncio.run(make())


def test_an_untrusted_server_is_refused_and_reported_until_accepted(
        demo: Plant, redis_client: redis.Redis, redis_url: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    paths = certificates(tmp_path)
    trust = TrustList(tmp_path / "pki")
    security = Security(policy="Basic256Sha256", mode="SignAndEncrypt", certificate=str(paths["client_cert"]),
                        private_key=str(paths["client_key"]), trust_dir=str(trust.directory))
    plant = fast_plant(demo, lines=["CM1"], security=security)
    expected = thumbprint(load_certificate(paths["server_cert"]))
    settings = Settings(plant_path=DEMO_PLANT, plant=plant, redis_url=redis_url, data_dir=tmp_path / "data")

    async def scenario() -> None:
        async with PlantSimulator(plant, autorun=False, certificate=paths["server_cert"],
                                  private_key=paths["server_key"]) as sim:
            stop = asyncio.Event()
            started: asyncio.Future[Collector] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(run_collector(settings, stop, options=FAST, env={}, started=started))
            collector = await started
            try:
                await until(lambda: redis_client.hexists(nodes_key("CM1"), "@demo"), what="the refusal reported")
                assert not collector.endpoints["demo"].connected.is_set()
                assert [e.thumbprint for e in trust.entries()] == [expected]
                assert [e.state for e in trust.entries()] == ["pending"]
                assert redis_client.xlen("plant:{CM1}:events") == 0, "nothing collected from an untrusted server"

                report = health(redis_client, plant, time.time())
                refused = next(line for line in report["lines"] if line["id"] == "CM1")["refused_endpoints"]
                assert [(r["endpoint"], r["status"], r["thumbprint"]) for r in refused] == [
                    ("demo", "BadCertificateUntrusted", expected)]
                assert f"python app.py trust accept {expected}" in refused[0]["hint"]

                trust.accept(expected[:12])  # the admin compared the thumbprint
                await collector.wait_connected(30)
                await sim.write("CM1", "OP30", Signal.GOOD, 9)
                await until(lambda: values(stream(redis_client, "CM1"), "OP30", Signal.GOOD)[-1:] == [9],
                            what="a value from the trusted server")
                await until(lambda: not redis_client.hexists(nodes_key("CM1"), "@demo"), what="the report cleared")
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)

    with caplog.at_level(logging.WARNING, logger="collectors.collector"):
        asyncio.run(scenario())
    refusals = [r.getMessage() for r in caplog.records if "server certificate refused" in r.getMessage()]
    assert len(refusals) == 1, "one WARNING per certificate, not one per retry"
    assert expected in refusals[0] and "trust accept" in refusals[0]
    assert [e.state for e in trust.entries()] == ["trusted"]


def test_a_trusted_server_connects_and_collects(demo: Plant, redis_client: redis.Redis, redis_url: str,
                                                tmp_path: Path) -> None:
    paths = certificates(tmp_path)
    trust = TrustList(tmp_path / "pki")
    trust.ensure()
    (trust.trusted_dir / "server.der").write_bytes(paths["server_cert"].read_bytes())
    security = Security(policy="Aes256_Sha256_RsaPss", mode="SignAndEncrypt", certificate=str(paths["client_cert"]),
                        private_key=str(paths["client_key"]), trust_dir=str(trust.directory))
    plant = fast_plant(demo, lines=["CM1"], security=security)
    settings = Settings(plant_path=DEMO_PLANT, plant=plant, redis_url=redis_url, data_dir=tmp_path / "data")

    async def scenario() -> None:
        async with PlantSimulator(plant, autorun=False, certificate=paths["server_cert"],
                                  private_key=paths["server_key"]) as sim:
            stop = asyncio.Event()
            started: asyncio.Future[Collector] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(run_collector(settings, stop, options=FAST, env={}, started=started))
            collector = await started
            try:
                await collector.wait_connected(30)
                await sim.write("CM1", "OP20", Signal.GOOD, 4)
                await until(lambda: values(stream(redis_client, "CM1"), "OP20", Signal.GOOD)[-1:] == [4],
                            what="a value over the trusted channel")
                assert collector.endpoints["demo"].stats.connects == 1
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert not trust.pending_dir.exists() or not list(trust.pending_dir.iterdir())
    assert redis_client.hlen(nodes_key("CM1")) == 0


def test_accept_needs_exactly_one_pending_match(tmp_path: Path) -> None:
    trust = TrustList(tmp_path / "pki")
    with pytest.raises(LookupError, match="0 pending"):
        trust.accept("abcd")


def test_trust_command_lists_and_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import app

    paths = certificates(tmp_path)
    trust = TrustList(tmp_path / "pki")
    pending = trust.store_pending(load_certificate(paths["server_cert"]))
    expected = pending.stem
    text = DEMO_PLANT.read_text(encoding="utf-8").replace(
        "    queue_size: 1000\n",
        "    queue_size: 1000\n    security:\n      policy: Basic256Sha256\n      mode: SignAndEncrypt\n"
        f"      certificate: {paths['client_cert']}\n      private_key: {paths['client_key']}\n"
        f"      trust_dir: {trust.directory}\n", 1)
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(text, encoding="utf-8")

    assert app.main(["--plant", str(plant_file), "trust", "list"]) == 0
    assert f"pending  {expected}" in capsys.readouterr().out
    assert app.main(["--plant", str(plant_file), "trust", "accept", "0000"]) == 1
    assert app.main(["--plant", str(plant_file), "trust", "accept", expected[:16]]) == 0
    assert [(e.state, e.thumbprint) for e in trust.entries()] == [("trusted", expected)]
