"""English and Simplified Chinese (issue 13): catalogue completeness, how a request's
language is chosen, names in two languages in the plant file, numbers and durations per
language, CSV headers and the byte order mark, and pages built in Chinese (the admin and
audit screens too, with a logged-in admin over the Flask test client)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from components import export, i18n, oee_panel, stops_list, theme
from config.loader import DEMO_PLANT, PlantConfigError, load_plant, parse_plant
from domain.text import LocalText

ROOT = Path(__file__).resolve().parent.parent
DEMO_TEXT = DEMO_PLANT.read_text(encoding="utf-8")
PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def extracted() -> set[tuple[str | None, str]]:
    """Every message in the code as (context, message), extracted as ``babel.cfg`` says
    (``pybabel extract``)."""
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    method_map = [("components/**.py", "python")]
    found = extract_from_dir(str(ROOT), method_map, keywords=keywords)
    return {(context, message if isinstance(message, str) else message[0])
            for _file, _line, message, _comments, context in found}


def catalogue(language: str) -> dict[Any, Any]:
    """(context, message) -> catalogue entry; plain messages also by their text alone."""
    with i18n.po_path(language).open("rb") as f:
        entries = [m for m in read_po(f) if m.id]
    return {**{(m.context, m.id): m for m in entries}, **{m.id: m for m in entries if not m.context}}


def test_every_message_in_the_code_has_a_chinese_translation() -> None:
    """Fails on a new ``_("...")`` nobody translated: run the extraction in README "Languages"."""
    messages = extracted()
    assert len(messages) > 100
    zh = catalogue("zh-CN")
    missing = sorted(m for m in messages if m not in zh or not zh[m].string or zh[m].fuzzy)
    assert missing == [], f"no zh-CN translation for {missing}"
    en = catalogue("en")
    assert sorted(m for m in messages if m not in en) == []


def test_translations_keep_their_placeholders() -> None:
    for message in catalogue("zh-CN").values():
        assert sorted(PLACEHOLDER.findall(message.string)) == sorted(PLACEHOLDER.findall(message.id)), message.id


def test_glossary_terms_are_the_ones_on_screen() -> None:
    """The README's glossary and the catalogue say the same (one word per idea)."""
    zh = catalogue("zh-CN")
    for msgid, term in [("OEE", "设备综合效率"), ("Availability", "时间开动率"), ("Performance", "性能开动率"),
                        ("Quality", "合格品率"), ("TEEP", "完全有效生产率"), ("Planned busy time", "计划负荷时间"),
                        ("Small stops", "短暂停机"),
                        ("Changeover", "换型"), ("Starved", "待料"), ("Blocked", "堵料"),
                        ("kWh per good part", "单件合格品电耗"), ("operator", "操作工"), ("supervisor", "班组长"),
                        ("engineer", "工程师"), ("admin", "管理员")]:
        assert zh[msgid].string == term
        assert f"| {term}" in (ROOT / "README.md").read_text(encoding="utf-8"), term


@pytest.mark.parametrize(("tag", "expected"), [
    ("zh-CN", "zh-CN"), ("zh_CN", "zh-CN"), ("zh", "zh-CN"), ("ZH-cn", "zh-CN"), ("zh-Hans", "zh-CN"),
    ("zh-Hans-CN", "zh-CN"), ("zh-SG", "zh-CN"), ("zh-TW", None), ("zh-HK", None), ("en", "en"),
    ("en-US", "en"), ("en_GB", "en"), ("de", None), ("", None), (None, None), (" ", None),
])
def test_language_tags(tag: object, expected: str | None) -> None:
    assert i18n.normalise(tag) == expected


@pytest.mark.parametrize(("url", "user", "accept", "plant", "expected"), [
    ("zh-CN", "en", [("en", 1.0)], "en", "zh-CN"),  # the URL wins (a kiosk)
    (None, "zh-CN", [("en", 1.0)], "en", "zh-CN"),  # then the user
    ("fr", "zh-CN", [("en", 1.0)], "en", "zh-CN"),  # a language we do not speak is no choice
    (None, None, [("de", 1.0), ("zh-CN", 0.8), ("en", 0.5)], "en", "zh-CN"),  # best the browser takes
    (None, None, [("en", 0.4), ("zh", 0.9)], "en", "zh-CN"),  # by quality, not order
    (None, None, [("zh-TW", 1.0)], "en", "en"),  # Traditional: the plant's
    (None, None, [], "zh-CN", "zh-CN"),  # the plant file's default
    (None, None, [("zh-CN", 0.0)], "en", "en"),  # q=0 means "not this"
    (None, None, None, "xx", "en"),
])
def test_which_language_a_request_gets(url: Any, user: Any, accept: Any, plant: str, expected: str) -> None:
    assert i18n.choose(url, user, accept, plant) == expected


@pytest.mark.parametrize(("seconds", "en", "zh"), [
    (45, "45 s", "45秒"),
    (720, "12 min", "12分钟"),
    (3 * 3600 + 300, "3 h 05 min", "3小时05分"),
    (2 * 86400 + 4 * 3600, "2 d 4 h", "2天4小时"),
    (None, theme.DASH, theme.DASH),
])
def test_durations_per_language(seconds: Any, en: str, zh: str) -> None:
    with i18n.use("en"):
        assert theme.duration(seconds) == en
    with i18n.use("zh-CN"):
        assert theme.duration(seconds) == zh


@pytest.mark.parametrize(("call", "en", "zh"), [
    (lambda: theme.count(1234567), "1\u2009234\u2009567", "1,234,567"),
    (lambda: theme.number(1234.56, 1, "kW"), "1\u2009234.6\u2009kW", "1,234.6\u2009kW"),
    (lambda: theme.kw(6900), "6.90\u2009MW", "6.90\u2009MW"),
    (lambda: theme.signed_count(-1200), "\u22121\u2009200", "\u22121,200"),
    (lambda: theme.pct(0.8234), "82.3\u2009%", "82.3\u2009%"),
])
def test_numbers_per_language(call: Any, en: str, zh: str) -> None:
    with i18n.use("en"):
        assert call() == en
    with i18n.use("zh-CN"):
        assert call() == zh


def test_no_data_since_per_language() -> None:
    now = 1_764_003_600.0  # 2025-11-25 01:00 +08:00
    with i18n.use("zh-CN"):
        assert theme.since_text(now - 600, now, "Asia/Shanghai") == "自 00:50 起无数据"
        assert theme.since_text(now - 86400 * 2, now, "Asia/Shanghai") == "自 11月23日 01:00 起无数据"
    with i18n.use("en"):
        assert theme.since_text(now - 600, now, "Asia/Shanghai") == "no data since 00:50"
        assert theme.since_text(now - 86400 * 2, now, "Asia/Shanghai") == "no data since 23 Nov 01:00"


# --- names in two languages --------------------------------------------------------------

def test_demo_plant_names_in_both_languages_and_english_for_the_api() -> None:
    plant = load_plant(DEMO_PLANT)
    assert plant.language == "en"
    line = plant.line("BW1")
    assert line is not None and isinstance(line.name, LocalText)
    assert line.name == "Body welding line 1 (automotive body-in-white)"  # what the API and logs read
    assert line.name.in_language("zh-CN") == "车身焊装线 1（白车身）"
    assert all(m.name.in_language("zh-CN") != m.name for ln in plant.lines for m in ln.machines)
    assert all(r.text.in_language("zh-CN") != r.text for r in plant.reasons.values())
    assert plant.model_dump()["reasons"][30]["text"] == {"en": "Waiting for material", "zh-CN": "待料"}


def test_a_name_in_chinese_only_is_its_own_base() -> None:
    text = DEMO_TEXT.replace('name: {en: "Flying shear", zh-CN: "飞剪"}', 'name: {zh-CN: "飞剪"}')
    plant = parse_plant(text)
    shear = next(m for ln in plant.lines for m in ln.machines if m.id == "BR-SH")
    assert shear.name == "飞剪" and shear.name.in_language("en") == "飞剪"


@pytest.mark.parametrize(("replacement", "problem"), [
    ('name: {en: "Flying shear", fr: "Cisaille"}', "unknown language 'fr'"),
    ('name: {en: "Flying shear", zh-CN: " "}', "empty text for zh-CN"),
    ("name: {}", "give a text, or one per language"),
    ('name: {en: "Flying shear", zh-CN: 7}', "zh-CN"),
])
def test_bad_names_are_refused_with_where_and_why(replacement: str, problem: str) -> None:
    text = DEMO_TEXT.replace('name: {en: "Flying shear", zh-CN: "飞剪"}', replacement)
    with pytest.raises(PlantConfigError) as err:
        parse_plant(text)
    assert "lines[2].machines[4].name" in str(err.value) and problem in str(err.value), str(err.value)


def test_plant_language_is_validated() -> None:
    with pytest.raises(PlantConfigError, match="language"):
        parse_plant(DEMO_TEXT.replace("language: en ", "language: fr ", 1))
    assert parse_plant(DEMO_TEXT.replace("language: en ", "language: zh-CN ", 1)).language == "zh-CN"


# --- downloads ------------------------------------------------------------------------------

STOP = {"machine": "ST20", "start": 1_764_000_000.0, "end": 1_764_000_600.0, "duration_s": 600.0, "lost_s": 600.0,
        "reason": 2, "reason_text": "Weld fault (gun / transformer)", "category": "equipment_failure",
        "planned": False, "micro": False}


def test_csv_headers_follow_the_language_with_english_keys_unchanged() -> None:
    with i18n.use("en"):
        assert stops_list.stops_csv([STOP], "Asia/Shanghai").splitlines()[0].startswith("machine,start_local,")
    with i18n.use("zh-CN"):
        head = stops_list.stops_csv([STOP], "Asia/Shanghai").splitlines()[0].split(",")
        rows = [{"shift": "2025-11-25 A", "availability": 0.9, "performance": 0.8, "quality": 0.99, "oee": 0.71,
                 "good_count": 10, "reject_count": 0, "down_s": 1.0}]
        shifts = oee_panel.shifts_csv(rows).splitlines()[0].split(",")
    assert head[:3] == ["设备", "开始（本地时间）", "结束（本地时间）"] and "原因" in head
    assert shifts == ["班次", "时间开动率", "性能开动率", "合格品率", "设备综合效率", "合格品数", "废品", "停机（秒）"]


def test_downloads_start_with_a_byte_order_mark() -> None:
    sent = export.send_csv("a,b\n1,2\n", "x.csv")
    assert sent["content"].startswith("\ufeffa,b") and sent["filename"] == "x.csv"
    assert sent["content"].encode("utf-8")[:3] == b"\xef\xbb\xbf"


# --- through the app ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app() -> Any:
    from components.app_factory import create_app
    from config.settings import Settings
    from tests.test_components import SampleReader

    plant = load_plant(DEMO_PLANT)
    settings = Settings(plant_path=DEMO_PLANT, plant=plant, redis_url="redis://unused")
    return create_app(settings, SampleReader, clock=lambda: 1_764_000_000.0)


def test_lang_in_the_url_sets_page_language_and_cookie(app: Any) -> None:
    client = app.server.test_client()
    page = client.get("/wall?lang=zh-CN")
    assert '<html lang="zh-CN">' in page.text and "<title>柳州演示工厂</title>" in page.text
    assert "lang=zh-CN" in page.headers.get("Set-Cookie", "")
    again = client.get("/wall")  # the cookie: the page's callbacks and links keep the language
    assert '<html lang="zh-CN">' in again.text
    back = client.get("/?lang=en")
    assert '<html lang="en">' in back.text and "<title>Liuzhou demo plant</title>" in back.text


def test_browser_language_then_plant_default(app: Any) -> None:
    client = app.server.test_client()
    assert '<html lang="zh-CN">' in client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    assert '<html lang="en">' in client.get("/", headers={"Accept-Language": "de-DE,zh-TW;q=0.5"}).text
    assert "Set-Cookie" not in client.get("/", headers={"Accept-Language": "zh"}).headers  # only a URL sets it


def test_user_setting_comes_after_the_url(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(i18n, "user_language", lambda: "zh-CN")
    client = app.server.test_client()
    assert '<html lang="zh-CN">' in client.get("/", headers={"Accept-Language": "en"}).text
    assert '<html lang="en">' in client.get("/?lang=en").text


def test_api_stays_english(redis_url: str) -> None:
    """Field names and messages of the API are a machine contract: never translated."""
    import redis

    from api import create_api_blueprint
    from components.app_factory import create_app
    from config.settings import Settings
    from store.reader import PlantReader

    plant = load_plant(DEMO_PLANT)
    settings = Settings(plant_path=DEMO_PLANT, plant=plant, redis_url=redis_url)
    fresh = create_app(settings, lambda: PlantReader(redis.Redis.from_url(redis_url), plant))
    fresh.server.register_blueprint(create_api_blueprint(fresh.server.config["PLANT_READER"]))
    client = fresh.server.test_client()
    got = client.get("/api/lines/BW1/kpis?start=garbage&lang=zh-CN", headers={"Accept-Language": "zh-CN"})
    assert got.status_code == 400
    assert "start" in got.json["error"] and re.search(r"[\u4e00-\u9fff]", got.text) is None
    lines = client.get("/api/lines?lang=zh-CN", headers={"Accept-Language": "zh-CN"}).text
    assert "Body welding line 1" in lines and "车身焊装线" not in lines


LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
ALLOWED = {"OEE", "TEEP", "MTBF", "MTTR", "kWh", "kW", "MW", "CSV", "CNY", "kg", "mm",
           "CO", "English", "HH", "MM", "SS"}  # the last: a time's pattern in a placeholder


def visible_strings(component: Any) -> list[str]:
    """The text children of a layout tree (what a browser would show), titles aside."""
    if isinstance(component, str):
        return [component]
    if isinstance(component, list | tuple):
        return [s for c in component for s in visible_strings(c)]
    out = []
    if getattr(component, "children", None) is not None:
        out += visible_strings(component.children)
    for option in getattr(component, "options", None) or []:
        out.append(str(option["label"]))
    if getattr(component, "placeholder", None):
        out.append(str(component.placeholder))
    return out


def untranslated(strings: list[str], plant: Any) -> list[str]:
    ids = {ln.id for ln in plant.lines} | {m.id for ln in plant.lines for m in ln.machines}
    return [s for s in strings for word in LATIN_WORD.findall(s) if word not in ALLOWED and word not in ids
            and not any(word in i for i in ids)]


@pytest.mark.parametrize("path", ["/", "/wall", "/wall/BW1?rotate=5", "/line/BW1", "/line/CM1/machine/OP20",
                                  "/admin/users", "/admin/reasons", "/audit", "/BW1"])  # /BW1: not found
def test_pages_built_in_chinese_hold_no_english(app: Any, path: str) -> None:
    from components.app_factory import page_for

    plant = app.server.config["PLANT"]
    with app.server.test_request_context(path), i18n.use("zh-CN"):
        page = page_for(plant, path.split("?")[0], "?" + path.split("?")[1] if "?" in path else "")
    assert untranslated(visible_strings(page), plant) == []


@pytest.mark.parametrize(
    ("message", "zh"),
    [
        ({"k": "stopped_reason", "p": {"line": "BW1", "machine": "ST20", "minutes": 14, "reason": "x", "code": 2},
          "prefix": ""}, "已停机 14 分钟（"),
        ({"k": "behind_pace", "p": {"line": "CM1", "behind": 23, "share": 27}, "prefix": ""},
         "CM1：落后节拍 23 件（27 %）"),
        ({"k": "worker_silent", "p": {"line": "BR1"}, "prefix": ""}, "BR1：汇总进程未运行"),
    ],
)
def test_alert_texts_are_worded_in_the_screens_language(app: Any, message: dict[str, Any], zh: str) -> None:
    """The wall's alert lines: the alert's message as data, worded per language; the
    English text it was stored with is only the fallback."""
    from components.alerts_panel import alert_text

    alert = {"line": message["p"]["line"], "text": "English as stored", "message": message}
    with app.server.test_request_context("/wall"), i18n.use("zh-CN"):
        worded = alert_text(alert)
        assert zh in worded and untranslated([worded], app.server.config["PLANT"]) == [], worded
    with app.server.test_request_context("/wall"), i18n.use("en"):
        assert alert_text(alert) != "English as stored"
        assert alert_text({"line": "BW1", "text": "English as stored"}) == "English as stored"


# --- the admin and audit screens, with their data, over the Flask test client ---------------

def json_strings(node: Any) -> list[str]:
    """``visible_strings`` of a component as a Dash callback answers it (JSON)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for n in node for s in json_strings(n)]
    if not isinstance(node, dict) or "props" not in node:
        return []
    props = node["props"]
    out = json_strings(props.get("children"))
    out += [str(option["label"]) for option in props.get("options") or []]
    return out + ([str(props["placeholder"])] if props.get("placeholder") else [])


def dash_call(client: Any, outputs: list[tuple[str, str]], inputs: list[Any], state: list[Any] | None = None,
              changed: str | None = None) -> dict[str, Any]:
    """One callback over HTTP, as the browser sends it: {output id: {property: value}}."""
    body = {"output": (f"{outputs[0][0]}.{outputs[0][1]}" if len(outputs) == 1 else
                       ".." + "...".join(f"{i}.{p}" for i, p in outputs) + ".."),
            "outputs": ({"id": outputs[0][0], "property": outputs[0][1]} if len(outputs) == 1 else
                        [{"id": i, "property": p} for i, p in outputs]),
            "inputs": inputs, "state": state or [], "changedPropIds": [changed] if changed else []}
    answer = client.post("/_dash-update-component", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.get_json()["response"])


def value(ident: str, prop: str, given: Any) -> dict[str, Any]:
    return {"id": ident, "property": prop, "value": given}


@pytest.fixture
def admin_env(redis_client: Any, redis_url: str, tmp_path: Path) -> dict[str, Any]:
    """The operator loop's app on a real Redis, its users (tests/operator_support.py), and a
    client per role logged in with the screens in Chinese."""
    from store.reader import PlantReader
    from tests.operator_support import add_users, login, make_app, operator_plant

    plant = operator_plant()
    app = make_app(PlantReader(redis_client, plant), plant, tmp_path, redis_url)
    add_users(redis_client, plant)
    clients = {}
    for name in ("admin1", "supervisor1"):
        client = app.server.test_client()
        login(client, name)
        assert client.get("/admin/users?lang=zh-CN").status_code == 200  # the cookie: callbacks speak Chinese
        clients[name] = client
    return {"app": app, "plant": plant, "clients": clients}


def untranslated_beside(strings: list[str], plant: Any, recorded: set[str]) -> list[str]:
    """``untranslated``, with what the data holds (user names, reason texts, recorded JSON) taken out."""
    bare = []
    for text in strings:
        if text.startswith("{"):
            continue  # an audit entry's before/after, as recorded
        for data in sorted(recorded, key=len, reverse=True):
            text = text.replace(data, "")
        bare.append(text)
    return untranslated(bare, plant)


def test_users_page_in_chinese_for_an_admin_and_a_supervisor(admin_env: dict[str, Any]) -> None:
    from components import admin_users as au
    from tests.operator_support import login

    client, plant = admin_env["clients"]["admin1"], admin_env["plant"]
    names = {"admin1", "operator1", "operator2", "supervisor1", "supervisor1b", "engineer1", "newop"}
    table = json_strings(dash_call(client, [(au.TABLE, "children")], [value(au.DONE, "data", 0)])[au.TABLE]["children"])
    assert {"用户", "角色", "产线", "操作工", "班组长", "工程师", "管理员", "停用"} <= set(table), table
    assert untranslated_beside(table, plant, names) == []

    def add(password: str) -> str:
        said = dash_call(client, [(au.MESSAGE, "children"), (au.DONE, "data"), (au.PASSWORD, "value")],
                         [value(au.ADD, "n_clicks", 1), []],
                         [value(au.NAME, "value", "newop"), value(au.ROLE, "value", "operator"),
                          value(au.LINES, "value", "L1"), value(au.PASSWORD, "value", password),
                          value(au.DONE, "data", 0)], changed=f"{au.ADD}.n_clicks")
        return " ".join(json_strings(said[au.MESSAGE]["children"]))

    assert "10 to 1024 characters" in add("short")  # the API's refusal, in English as the API words it
    assert add("a long enough password") == "用户 newop 已添加。"
    refused = dash_call(admin_env["clients"]["supervisor1"], [(au.TABLE, "children")], [value(au.DONE, "data", 0)])
    assert json_strings(refused[au.TABLE]["children"]) == ["无权操作：班组长角色不能管理用户和令牌。"]
    in_english = admin_env["app"].server.test_client()  # English: the API's sentence, word for word
    login(in_english, "supervisor1")
    in_english.get("/admin/users?lang=en")
    refused_en = dash_call(in_english, [(au.TABLE, "children")], [value(au.DONE, "data", 0)])
    assert json_strings(refused_en[au.TABLE]["children"]) == [
        "Forbidden: the role supervisor may not manage users and tokens."]


def test_reason_lists_page_in_chinese_for_an_admin(admin_env: dict[str, Any]) -> None:
    from components import admin_reasons as ar

    client, plant = admin_env["clients"]["admin1"], admin_env["plant"]
    saved = dash_call(client, [(ar.MESSAGE, "children"), (ar.DONE, "data")],
                      [value(ar.SAVE, "n_clicks", 1), [], [], []],
                      [value(ar.CODE, "value", 7), value(ar.TEXT, "value", "Robot teach"),
                       value(ar.TEXT_ZH, "value", "机器人示教"), value(ar.CATEGORY, "value", "setup_adjustment"),
                       value(ar.FLAGS, "value", []), [], [], value(ar.DONE, "data", 0)], changed=f"{ar.SAVE}.n_clicks")
    assert json_strings(saved[ar.MESSAGE]["children"]) == ["原因 7 已保存。"]
    body = json_strings(dash_call(client, [(ar.BODY, "children")], [value(ar.DONE, "data", 1)])[ar.BODY]["children"])
    assert {"全厂列表（在线管理）", "换型与调整", "设备故障", "7 机器人示教", "保存 L1 的列表",
            "使用全厂列表"} <= set(body), body
    texts = {str(r.text) for r in plant.reasons.values()} | {"Robot teach"}
    assert untranslated_beside(body, plant, texts) == []


def test_audit_trail_in_chinese_for_an_admin(admin_env: dict[str, Any]) -> None:
    from components import admin_users as au
    from components import audit_page

    client, plant = admin_env["clients"]["admin1"], admin_env["plant"]
    dash_call(client, [(au.MESSAGE, "children"), (au.DONE, "data"), (au.PASSWORD, "value")],
              [value(au.ADD, "n_clicks", 1), []],
              [value(au.NAME, "value", "newop"), value(au.ROLE, "value", "operator"), value(au.LINES, "value", "L1"),
               value(au.PASSWORD, "value", "a long enough password"), value(au.DONE, "data", 0)],
              changed=f"{au.ADD}.n_clicks")
    got = dash_call(client, [(audit_page.TABLE, "children"), (audit_page.CHAIN, "children")],
                    [value(audit_page.TRIGGER, "data", 0)])
    chain = json_strings(got[audit_page.CHAIN]["children"])
    assert len(chain) == 1 and chain[0].startswith("哈希链完整：共 ") and chain[0].endswith(" 条记录。"), chain
    table = json_strings(got[audit_page.TABLE]["children"])
    assert {"时间", "操作人", "操作", "登录", "添加用户", "admin1 (管理员)"} <= set(table), table
    assert untranslated_beside(table, plant, {"admin1", "supervisor1", "newop"}) == []


def test_refusals_word_the_apis_sentence_per_language() -> None:
    """In English the screens' refusal is the API's 403 sentence word for word; in Chinese
    the role is worded too."""
    from components.admin_users import FORBIDDEN, forbidden
    from domain.roles import Principal, Role, refusal

    for role in Role:
        for action in FORBIDDEN:
            who = Principal("x", role, ("*",))
            why = refusal(who, action)
            with i18n.use("en"):
                assert forbidden(who, action) == (None if why is None else f"Forbidden: {why}.")
            with i18n.use("zh-CN"):
                worded = forbidden(who, action)
                assert (worded is None) == (why is None)
                assert worded is None or LATIN_WORD.search(worded) is None, worded


def test_every_action_the_audit_trail_records_is_worded() -> None:
    """The actions written by the API and the command line (read from their source) each
    have words on ``/audit``: a new one without them would show its bare name in Chinese."""
    from components.audit_page import action_labels

    written = set()
    for source in [*(ROOT / "api").glob("*.py"), ROOT / "store" / "admin.py"]:
        written |= set(re.findall(r"record\([^\n]*?, \"([a-z_]+)\"", source.read_text(encoding="utf-8")))
    written |= {f"user_{action}" for action in ("disable", "enable", "passwd")}  # store/admin.py: user_{action}
    assert {"login", "user_add", "token_create", "alert_ack", "denied"} <= written  # the scan finds them
    with i18n.use("zh-CN"):
        labels = action_labels()
    assert sorted(written - set(labels)) == []
    assert all(LATIN_WORD.search(label) is None for label in labels.values()), labels
    with i18n.use("en"):
        assert all(name == label for name, label in action_labels().items())

