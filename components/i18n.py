"""The screens' language: English or Simplified Chinese, chosen per request.

Catalogues are gettext ``.po`` files under ``components/locale`` (extracted with Babel,
see README "Languages"); the ``.mo`` files are compiled from them at start when missing or
older, and never committed. Every visible string goes through ``_`` (or ``N_`` where it is
a module-level constant translated where it is shown).

Which language a request gets, first that applies:
1. ``?lang=zh-CN`` (or ``en``) in the page's URL: each wall screen is set by its kiosk URL.
   The choice is kept in a cookie, so the page's own callbacks (which do not carry the
   page's URL) and the links followed from it speak the same language; the switch in the
   navigation bar is such a URL.
2. A logged-in user's setting: ``user_language`` (a hook the login module sets).
3. The browser's ``Accept-Language``.
4. The plant file's ``language``.

The HTTP API never asks: its field names and messages stay English (a machine contract).
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import context
from domain.text import DEFAULT_LANGUAGE, LANGUAGES, in_language

log = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
QUERY = "lang"
COOKIE = "lang"
COOKIE_MAX_AGE_S = 400 * 86400  # browsers cap cookies at 400 days
_CATALOGUE = {"en": "en", "zh-CN": "zh_CN"}  # language tag -> catalogue folder
_BABEL = {"en": "en", "zh-CN": "zh_Hans_CN"}  # language tag -> Babel locale
NAMES = {"en": "English", "zh-CN": "中文"}  # each language in its own words (the switch)

# Issue 11's login module sets this: the logged-in user's language, or None.
user_language: Callable[[], str | None] | None = None

_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("forced_language", default=None)


def normalise(tag: object) -> str | None:
    """A language tag as browsers and people write it -> one of ``LANGUAGES`` (None: not ours).
    zh, zh-CN, zh_CN, zh-Hans, zh-Hans-CN, zh-SG: Simplified Chinese; zh-TW and zh-HK are
    Traditional, which this product does not speak."""
    if not isinstance(tag, str) or not tag.strip():
        return None
    parts = tag.strip().replace("_", "-").lower().split("-")
    if parts[0] == "en":
        return "en"
    if parts[0] == "zh":
        rest = set(parts[1:])
        if not rest or rest & {"cn", "hans", "sg"}:
            return "zh-CN"
    return None


def choose(url: object = None, user: object = None, accept: list[tuple[str, float]] | None = None,
           plant: object = DEFAULT_LANGUAGE) -> str:
    """The language, first that applies: URL (or its cookie), user, browser, plant (pure)."""
    for tag in (url, user):
        if normalise(tag):
            return normalise(tag)  # type: ignore[return-value]
    for tag, quality in sorted(accept or [], key=lambda tq: -tq[1]):
        if quality > 0 and normalise(tag):
            return normalise(tag)  # type: ignore[return-value]
    return normalise(plant) or DEFAULT_LANGUAGE


def current() -> str:
    """This request's language (English outside a request, e.g. a builder called in a test)."""
    forced = _forced.get()
    if forced:
        return forced
    if not context.has_request():
        return _plant_default()
    memo = context.g()
    cached = memo.get("language")
    if cached is None:
        request = context.request()
        cached = choose(url=request.query_params.get(QUERY) or request.cookies.get(COOKIE),
                        user=user_language() if user_language else None,
                        accept=accept_languages(request.headers.get("accept-language", "")), plant=_plant_default())
        memo["language"] = cached
    return str(cached)


def accept_languages(header: str) -> list[tuple[str, float]]:
    """An ``Accept-Language`` header as (tag, quality) pairs."""
    out = []
    for part in header.split(","):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag.strip():
            out.append((tag.strip(), quality))
    return out


def _plant_default() -> str:
    plant = context.config().get("PLANT")  # components.data.PLANT_KEY
    return str(getattr(plant, "language", DEFAULT_LANGUAGE))


@contextlib.contextmanager
def use(language: str) -> Iterator[None]:
    """Speak ``language`` inside the block (tests; a page built for a given ``?lang=``)."""
    token = _forced.set(normalise(language) or DEFAULT_LANGUAGE)
    try:
        yield
    finally:
        _forced.reset(token)


# --- catalogues ------------------------------------------------------------------------

def po_path(language: str) -> Path:
    return LOCALE_DIR / _CATALOGUE[language] / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_catalogue(language: str) -> bytes:
    """The ``.mo`` bytes of a language's ``.po``; written beside it when missing or older
    (a read-only install just keeps them in memory)."""
    po = po_path(language)
    mo = po.with_suffix(".mo")
    if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
        return mo.read_bytes()
    with po.open("rb") as f:
        catalogue = read_po(f, locale=_CATALOGUE[language])
    buffer = io.BytesIO()
    write_mo(buffer, catalogue)
    data = buffer.getvalue()
    try:
        mo.write_bytes(data)
    except OSError as exc:
        log.info("catalogue %s compiled in memory only (%s)", language, exc)
    return data


@cache
def translations(language: str) -> NullTranslations:
    if language not in _CATALOGUE or not po_path(language).exists():
        return NullTranslations()
    return Translations(io.BytesIO(compile_catalogue(language)), domain=DOMAIN)


def compile_all() -> None:
    """Compile every catalogue now (at start), so the first request does not pay for it."""
    for language in LANGUAGES:
        translations(language)


def gettext(message: str) -> str:
    """``message`` in this request's language (the message itself where no translation exists)."""
    if not message:
        return message
    return str(translations(current()).gettext(message))


def pgettext(context: str, message: str) -> str:
    """``message`` where the same English word needs another translation (``context``)."""
    return str(translations(current()).pgettext(context, message))


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current()).ngettext(singular, plural, n)


_ = gettext


def N_(message: str) -> str:  # noqa: N802 - the gettext convention
    """Marks a module-level string for extraction; ``_`` translates it where it is shown."""
    return message


def client_texts() -> dict[str, str]:
    """The banners the browser writes itself (``assets/dashboard.js``: the watchdog and the
    status line), in this request's language; ``{placeholders}`` are filled in there."""
    return {
        "catching_up": _("catching up history ({pct} %) \u2014 figures fill in as it goes"),
        "lost": _("Redis lost data: figures from {from} to {to} are incomplete (see /api/health)"),
        "no_data": _("no data"),
        "no_data_since": _("no data since {time}"),
        "db_down": _("the server answers, its database does not; retrying"),
        "busy": _("server busy, waiting for figures"),
        "waiting": _("waiting for the server"),
        "down": _("server not answering, retrying"),
    }


def local(text: object) -> str:
    """A plant file's name or text (``domain.text.LocalText``) in this request's language."""
    return in_language(text, current())


def reason_text(code: object, given: object = None) -> str:
    """A reason code's text in this request's language: the plant file's translation of
    the code where it has one, else the text the reader gave, else 'Reason N'. English is
    the reader's text as it is (the API's)."""
    if context.has_request() and not (given and current() == "en"):
        plant = context.config().get("PLANT")
        reasons = getattr(plant, "reasons", {}) or {}
        try:
            reason = reasons.get(int(code))  # type: ignore[call-overload]
        except (TypeError, ValueError):
            reason = None
        if reason is not None:
            return local(reason.text)
    if given:
        return str(given)
    return _("Reason {code}").format(code=code) if code not in (None, "", 0) else ""


# --- numbers and dates -----------------------------------------------------------------

def babel_locale(language: str | None = None) -> Locale:
    return Locale.parse(_BABEL[language or current()])


def decimal(value: float, digits: int) -> str:
    """A number with ``digits`` decimals, grouped as the language groups digits (Babel):
    12,345.6 in Chinese; English keeps the product's thin-space grouping (12 345.6)."""
    language = current()
    if language == "en":
        return f"{value:,.{digits}f}".replace(",", "\u2009")
    pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    return str(format_decimal(value, format=pattern, locale=babel_locale(language)))


def date_time(moment: Any, pattern: str) -> str:
    """A ``datetime`` with a CLDR pattern (Babel), e.g. ``_("d MMM HH:mm")`` per language."""
    return str(format_datetime(moment, pattern, locale=babel_locale()))


def install(app: Any) -> None:
    """The language on ``app`` (a Dash app): the ``?lang=`` cookie (``RememberLanguage``,
    middleware inside ``RequestContext``), ``<html lang>`` and the page title per request.
    Call once, after the app is built."""
    compile_all()
    plain_index = app.interpolate_index
    server = app.server

    def interpolate_index(**kwargs: Any) -> str:
        plant = context.config_of(server).get("PLANT")
        if plant is not None:
            kwargs["title"] = local(plant.name)
        page = str(plain_index(**kwargs))
        return page.replace('<html lang="en">', f'<html lang="{current()}">', 1)

    app.interpolate_index = interpolate_index
    server.add_middleware(RememberLanguage)


class RememberLanguage:
    """A ``?lang=`` the browser does not have as its cookie yet is set as the cookie."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not context.has_request():
            await self.app(scope, receive, send)
            return
        request = context.request()
        chosen = normalise(request.query_params.get(QUERY))
        if not chosen or chosen == request.cookies.get(COOKIE):
            await self.app(scope, receive, send)
            return

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(
                    "set-cookie", f"{COOKIE}={chosen}; Max-Age={COOKIE_MAX_AGE_S}; Path=/; HttpOnly; SameSite=Lax")
            await send(message)

        await self.app(scope, receive, with_cookie)
