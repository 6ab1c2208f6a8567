"""Security headers on every response; malformed requests get 4xx, never 500; the pages
still render in Chromium under the Content-Security-Policy, with no violation reported.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import create_api_router, security
from api.context import config_of
from components import data
from config.loader import DEMO_PLANT
from config.settings import Settings, parse_frame_ancestors
from tests.browser_support import CHROMIUM, new_chromium
from tests.support import Client, api_app
from tests.test_components import NOW, PLANT, SampleReader

UPDATE = "/_dash-update-component"


def full_app(frame_ancestors: str = "") -> Any:
    """The dashboard with /api on one server, as ``app.create_dash`` builds it."""
    from components import app_factory

    settings = Settings(plant_path=DEMO_PLANT, plant=PLANT, redis_url=None, frame_ancestors=frame_ancestors)
    app = app_factory.create_app(settings, SampleReader, clock=lambda: NOW)
    app.server.include_router(create_api_router(config_of(app.server)[data.READER_KEY], clock=lambda: NOW))
    return app


@pytest.fixture(scope="module")
def client() -> Any:
    return Client(full_app().server)


# --- headers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 200),
        ("GET", "/line/BW1", 200),
        ("GET", "/api/lines", 200),
        ("GET", "/api/nowhere", 404),
        ("GET", "/_dash-layout", 200),
        ("GET", "/_dash-dependencies", 200),
        ("GET", "/assets/10-dashboard.css", 200),
        ("POST", UPDATE, 400),
    ],
)
def test_every_response_carries_the_security_headers(client: Any, method: str, path: str, status: int) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "object-src 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_scripts_only_from_self_plus_the_hash_of_dashs_inline_script(client: Any) -> None:
    import base64
    import hashlib
    import re

    page = client.get("/")
    html = page.get_data(as_text=True)
    directives = dict(d.strip().split(" ", 1) for d in page.headers["Content-Security-Policy"].split(";"))
    inline = re.findall(r'<script id="_dash-renderer" type="application/javascript">(.*?)</script>', html, re.S)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert directives["script-src"] == f"'self' 'sha256-{digest}'"
    assert "unsafe-inline" not in directives["script-src"] and "unsafe-eval" not in directives["script-src"]
    assert "http" not in page.headers["Content-Security-Policy"], "no outside origin: everything is served locally"


def test_kiosk_embedding_only_when_configured() -> None:
    response = Client(full_app("'self' https://kiosk.plant.example:8443").server).get("/")
    assert "frame-ancestors 'self' https://kiosk.plant.example:8443" in response.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in response.headers  # it cannot name an origin; CSP takes over


@pytest.mark.parametrize(
    "value",
    ["*", "https://a.example; script-src *", "javascript:alert(1)", "kiosk.example", "'none' x", "'unsafe-inline'"],
)
def test_frame_ancestors_setting_refuses_anything_but_origins(value: str) -> None:
    with pytest.raises(ValueError, match="FRAME_ANCESTORS"):
        parse_frame_ancestors(value)
    with pytest.raises(SystemExit, match="FRAME_ANCESTORS"):
        Settings.from_env({"FRAME_ANCESTORS": value})


def test_frame_ancestors_from_the_environment() -> None:
    settings_ = Settings.from_env({"FRAME_ANCESTORS": "  'self'   https://*.plant.example  "})
    assert settings_.frame_ancestors == "'self' https://*.plant.example"
    assert Settings.from_env({}).frame_ancestors == ""


# --- malformed requests ----------------------------------------------------------------


SERVED = "dt-filter.data"  # a server-side callback with one plain output


def _valid_body(app: Any) -> dict[str, Any]:
    """The request the renderer sends for SERVED, built from the callback's declaration."""
    spec = app.callback_map[SERVED]
    out = spec["output"]
    return {
        "output": SERVED,
        "outputs": {"id": out.component_id, "property": out.component_property},
        "inputs": [{"id": i["id"], "property": i["property"], "value": None} for i in spec["inputs"]],
        "state": [{"id": i["id"], "property": i["property"], "value": None} for i in spec["state"]],
        "changedPropIds": [],
    }


@pytest.fixture(scope="module")
def body_app() -> Any:
    return full_app()


def test_the_valid_request_is_served(body_app: Any) -> None:
    response = Client(body_app.server).post(UPDATE, json=_valid_body(body_app))
    assert response.status_code in (200, 204), response.get_data(as_text=True)


def test_a_duplicate_output_is_served(body_app: Any) -> None:
    """An output declared with ``allow_duplicate`` (a panel's redraw after a classification):
    the renderer names its property ``data@<hash>``, as the callback map does."""
    name = next(k for k in body_app.callback_map if k.startswith("dt-redraw.data@"))
    spec = body_app.callback_map[name]
    body = {"output": name, "outputs": {"id": "dt-redraw", "property": name.split(".", 1)[1]},
            "inputs": [{"id": i["id"], "property": i["property"], "value": 1} for i in spec["inputs"]],
            "state": [], "changedPropIds": ["ut-saved.data"]}
    response = Client(body_app.server).post(UPDATE, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["response"]["dt-redraw"] == {"data": {"after": 1}}
    body["outputs"]["property"] = "children@" + name.split("@")[1]
    assert Client(body_app.server).post(UPDATE, json=body).status_code == 400


def _mutate(change: str, body: dict[str, Any]) -> Any:
    if change == "output unknown":
        body["output"] = "nothing.children"
    elif change == "output a number":
        body["output"] = 7
    elif change == "inputs missing":
        del body["inputs"]
    elif change == "inputs short":
        body["inputs"] = body["inputs"][:-1]
    elif change == "input wrong id":
        body["inputs"][0]["id"] = "dt-stops-nowhere"
    elif change == "input not a dict":
        body["inputs"][0] = "range-url.search"
    elif change == "state a dict":
        body["state"] = {"id": "range-url"}
    elif change == "outputs a list":
        body["outputs"] = [body["outputs"]]
    elif change == "outputs wrong property":
        body["outputs"] = {**body["outputs"], "property": "children"}
    elif change == "changedPropIds a string":
        body["changedPropIds"] = "range-url.search"
    elif change == "value of the wrong type":
        body["inputs"][0]["value"] = {"points": "not a list"}
        body["changedPropIds"] = [f"{body['inputs'][0]['id']}.{body['inputs'][0]['property']}"]
    elif change == "a list":
        return [body]
    elif change == "clientside output":
        return {**body, "output": "wall-last-seen.data"}
    return body


@pytest.mark.parametrize(
    "change",
    [
        "output unknown",
        "output a number",
        "inputs missing",
        "inputs short",
        "input wrong id",
        "input not a dict",
        "state a dict",
        "outputs a list",
        "outputs wrong property",
        "changedPropIds a string",
        "value of the wrong type",
        "a list",
        "clientside output",
    ],
)
def test_malformed_callback_request_is_400_json(body_app: Any, change: str) -> None:
    response = Client(body_app.server).post(UPDATE, json=_mutate(change, _valid_body(body_app)))
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert set(response.get_json()) == {"error"}
    assert len(response.get_json()["error"]) < 120


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("{", "application/json", 400),
        ("", "application/json", 400),
        ("[" * 100_000, "application/json", 400),
        (b'{"output": "\xed\xb3\xbf"}', "application/json", 400),  # a lone surrogate in UTF-8
        (b"\xff\xfe{", "application/json", 400),
        ("x" * (security.MAX_CALLBACK_BODY + 1), "application/json", 400),
    ],
)
def test_broken_json_is_400(client: Any, body: Any, content_type: str, status: int) -> None:
    response = client.post(UPDATE, data=body, content_type=content_type)
    assert response.status_code == status
    assert "error" in response.get_json()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data_=st.data())
def test_no_callback_request_gets_a_5xx(client: Any, data_: st.DataObject) -> None:
    """Random bodies, and valid bodies with one part replaced by a random value."""
    deps = client.get("/_dash-dependencies").get_json()
    dep = data_.draw(st.sampled_from(deps))
    body: Any = {
        "output": dep["output"],
        "outputs": [],
        "inputs": [{"id": i["id"], "property": i["property"], "value": data_.draw(json_values)} for i in dep["inputs"]],
        "state": [{"id": s["id"], "property": s["property"], "value": data_.draw(json_values)} for s in dep["state"]],
        "changedPropIds": [],
    }
    kind = data_.draw(st.sampled_from(["replace part", "whole body", "values only"]))
    if kind == "replace part":
        body[data_.draw(st.sampled_from(sorted(body)))] = data_.draw(json_values)
    elif kind == "whole body":
        body = data_.draw(json_values)
    response = client.post(UPDATE, data=json.dumps(body), content_type="application/json")
    assert response.status_code < 500, (body, response.get_data(as_text=True)[:300])


@pytest.fixture
def api_client(redis_client: Any) -> Any:
    """The API over a real PlantReader on the test Redis (empty: no data, still no 500)."""

    from store.reader import PlantReader

    server = api_app(create_api_router(PlantReader(redis_client, PLANT), clock=lambda: NOW))
    security.install_headers(server)
    return Client(server)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/lines/BW1/kpis?start=%00"),
        ("GET", "/api/lines/BW1/kpis?start=" + "9" * 5000),
        ("GET", "/api/lines/BW1/kpis?start=2024-13-45T99:99"),
        ("GET", "/api/lines/BW1/kpis?start=2024-01-02T00:00Z&end=2024-01-01T00:00Z"),
        ("GET", "/api/lines/%ff%fe/kpis"),
        ("GET", "/api/lines/BW1/machines/ST10/kpis?range=forever"),
        ("GET", "/api/lines/BW1/downtime?start=1e400"),
        ("POST", "/api/lines"),
        ("DELETE", "/api/lines/BW1/kpis"),
    ],
)
def test_malformed_api_requests_are_4xx_json(api_client: Any, method: str, path: str) -> None:
    response = api_client.open(path, method=method)
    assert 400 <= response.status_code < 500, (path, response.status_code, response.get_data(as_text=True)[:200])
    assert set(response.get_json()) == {"error"}
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- the pages under the policy, in Chromium -------------------------------------------

COLLECT_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(
    e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' + (e.sourceFile || '') + ':' + e.lineNumber));
"""


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    from tests.test_browser import Server

    srv = Server(full_app())
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    driver = new_chromium()
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COLLECT_VIOLATIONS})
    yield driver
    driver.quit()


def _wait(predicate: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # the element may not be there yet  # noqa: BLE001
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium (CI installs it)")
@pytest.mark.parametrize(
    ("path", "drawn"),
    [
        ("/", "[id*='ov-field'][id*='oee']"),
        ("/wall", "[id*='wall-field'][id*='oee']"),
        ("/line/BW1", "#oee-hourly .main-svg"),
        ("/line/BW1/machine/ST10", ".js-plotly-plot .main-svg"),
    ],
)
def test_pages_render_under_the_policy_without_violations(
    server: Any, chromium: Any, path: str, drawn: str, caplog: pytest.LogCaptureFixture
) -> None:
    from selenium.webdriver.common.by import By

    caplog.set_level(logging.INFO, logger="api.security")
    chromium.get_log("browser")  # start from a clean console
    chromium.get(server.url + path)
    _wait(lambda: [e for e in chromium.find_elements(By.CSS_SELECTOR, drawn) if e.is_displayed()], f"{drawn} on {path}")
    _wait(lambda: chromium.execute_script("return document.readyState") == "complete", "page load")
    violations = chromium.execute_script("return window.__csp")
    assert violations == [], violations
    severe = [e["message"] for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert not [m for m in severe if "Content Security Policy" in m or "Refused" in m], severe
    refused = [r.getMessage() for r in caplog.records if r.name == "api.security"]
    assert refused == [], "the guard refused a request the renderer sent"
