"""Who is calling: login and logout, sessions in signed cookies with CSRF protection,
``Authorization: Bearer`` tokens for machines, and the ``requires`` decorator that turns
"not logged in" into 401 and "not allowed" into 403, each with a clear JSON message.

Sessions are a signed cookie (``SECRET_KEY``; Starlette's ``SessionMiddleware``): it holds the user name, the
user's session version (a password change or disable bumps it, ending every session
of that user), a random session id and the CSRF token. The session id is also kept in
Redis (its hash, expiring with the session) and checked on every request, so logging
out ends that session on the server: a copied cookie stops working at once. The
cookie is HttpOnly, SameSite=Lax and, behind TLS, Secure (``SESSION_COOKIE_SECURE``).
Every write authenticated by the cookie must send the CSRF token (``X-CSRF-Token``
header or ``csrf_token`` form field, from ``GET /api/session``); token (Bearer)
requests carry no cookie and need none. Dash callbacks (JSON POSTs, which a
cross-site form cannot send, with a SameSite=Lax cookie a cross-site request does not
carry) act for the session's user.

Reads stay open unless ``require_login`` (plant file ``require_login: true`` or
``REQUIRE_LOGIN=1``): then every page and API read needs a login too.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from redis.exceptions import RedisError
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api import context
from api.context import g, session
from domain import answers
from domain.plant import Plant
from domain.roles import Action, Principal, refusal
from store.audit import AuditTrail
from store.users import Users

log = logging.getLogger(__name__)

AUTH_KEY = "PLANT_AUTH"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_HOURS = 12
# paths open without a login even when ``require_login`` is set
OPEN_PATHS = ("/login", "/api/login", "/api/health", "/favicon.ico")
OPEN_PREFIXES = ("/assets/",)


class Auth:
    """The users, the audit trail and the clock the auth layer works with (one per app)."""

    def __init__(self, redis_client: Any, plant: Plant, clock: Callable[[], float],
                 require_login: bool = False) -> None:
        self.plant = plant
        self.users = Users(redis_client, [line.id for line in plant.lines])
        self.audit = AuditTrail(redis_client)
        self.clock = clock
        self.require_login = require_login or plant.require_login

    def record(self, who: Principal | None, action: str, *, line: str | None = None, target: str | None = None,
               before: Any = None, after: Any = None, ok: bool = True, actor: str | None = None) -> None:
        self.audit.append(ts=self.clock(), actor=actor or (who.name if who else "-"), kind=who.kind if who else "-",
                          role=str(who.role) if who else "-", addr=client_addr(), action=action, line=line,
                          target=target, before=before, after=after, ok=ok)


class Denied(Exception):
    """A request refused by the rules: the 401/403/404 answer to give."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def auth() -> Auth:
    return context.config()[AUTH_KEY]  # type: ignore[no-any-return]


def installed() -> bool:
    """Whether the serving app has the operator loop (users, sessions, the audit trail)."""
    return context.config().get(AUTH_KEY) is not None


def client_addr() -> str:
    """The caller's address (behind a reverse proxy: ``PROXY_HOPS``, ``api.writes``)."""
    return context.client_host()


def secret_key(data_dir: Path, env: dict[str, str] | None = None) -> str:
    """``SECRET_KEY`` from the environment, else one generated once and kept in
    ``<data_dir>/secret_key`` (mode 0600), so sessions survive a restart."""
    env = dict(os.environ) if env is None else env
    if env.get("SECRET_KEY"):
        return env["SECRET_KEY"]
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    # written whole under a private name, then linked into place: uvicorn workers starting
    # together all end up with the one key that won, never with a half-written file
    tmp = data_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def current_principal() -> Principal | None:
    """The caller: a Bearer token's principal, else the session's user (None: anonymous).
    Memoised per request."""
    memo = g()
    if "principal" in memo:
        return memo["principal"]  # type: ignore[no-any-return]
    who: Principal | None = None
    header = context.request().headers.get("Authorization", "") if context.has_request() else ""
    cookie = session()
    if header[:7].lower() == "bearer ":
        who = auth().users.token_principal(header[7:].strip())
        memo["bad_token"] = who is None
    elif cookie.get("u"):
        name, users = str(cookie["u"]), auth().users
        user = users.get(name)
        if (user is not None and not user.disabled and user.session_version == cookie.get("sv")
                and users.session_user(str(cookie.get("sid") or "")) == name):
            who = user.principal()
        else:
            cookie.clear()
    memo["principal"] = who
    return who


def csrf_token() -> str:
    cookie = session()
    token = cookie.get("csrf")
    if not token:
        token = cookie["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def csrf_ok() -> bool:
    """The write carries the session's CSRF token (header, or the form field of a form an
    endpoint has read: ``context.read_form``)."""
    headers = context.request().headers if context.has_request() else {}
    sent = headers.get(CSRF_HEADER) or context.form().get(CSRF_FIELD) or ""
    expected = session().get("csrf") or ""
    return bool(expected) and hmac.compare_digest(str(sent), str(expected))


def error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="plant"'} if status == 401 else None
    return context.json_error(status, message, headers)


def check(action: Action, line: str | None, write: bool = True) -> Principal | Response:
    """The caller if it may do ``action`` on ``line``; else the 401/403 answer (a write
    by a session must carry the CSRF token)."""
    who = current_principal()
    if who is None:
        if g().get("bad_token"):
            return error(401, "invalid or revoked API token")
        return error(401, "login required: log in at /login, or send Authorization: Bearer <token>")
    if write and who.kind == "user" and not csrf_ok():
        return error(403, f"CSRF token missing or wrong: send the {CSRF_HEADER} header (GET /api/session gives it)")
    why = refusal(who, action, line)
    if why is not None:
        req = context.request()
        auth().record(who, "denied", line=line, target=f"{req.method} {req.url.path}", after=why, ok=False)
        return error(403, f"forbidden: {why}")
    return who


def require(action: Action, line: str | None = None) -> Principal:
    """The caller of a write view, if allowed: else ``Denied`` with 401 (no credentials),
    403 (a role or line not allowed, no CSRF token) or 404 (an unknown line)."""
    result = check(action, line)
    if isinstance(result, Response):
        raise Denied(result)
    if line is not None and auth().plant.line(line) is None:
        raise Denied(error(404, f"unknown line {line!r}"))
    return result


def login(name: str, password: str) -> tuple[int, str]:
    """Checks a login attempt (throttled, audited); on success starts the session.
    Returns (HTTP status, message)."""
    a, now, addr = auth(), auth().clock(), client_addr()
    name = name.strip()[:64]
    # a name that is no user is not written down: people type their password into it
    actor = name if a.users.get(name) is not None else "(unknown user)"
    wait = a.users.wait_s(name, addr, now)
    if wait > 0:
        a.record(None, "login_throttled", actor=actor, ok=False)
        return 429, f"too many failed logins: try again in {wait:.0f} s"
    user = a.users.authenticate(name, password)
    if user is None:
        a.users.record_failure(name, addr, now)
        a.record(None, "login_failed", actor=actor, ok=False)
        return 401, "wrong user name or password (or the user is disabled)"
    a.users.clear_failures(name)
    cookie = session()
    cookie.clear()
    sid = a.users.start_session(user.name, SESSION_HOURS * 3600)
    cookie.update({"u": user.name, "sv": user.session_version, "sid": sid})
    csrf_token()
    g()["principal"] = user.principal()
    a.record(user.principal(), "login")
    return 200, "logged in"


def logout() -> None:
    """Ends this session on the server too: a copy of the cookie no longer logs anyone in."""
    who = current_principal()
    if who is not None and who.kind == "user":
        auth().record(who, "logout")
    auth().users.end_session(str(session().get("sid") or ""))
    session().clear()


def safe_next(target: str | None) -> str:
    """A local path to go to after the login (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def json_body(request: Request) -> Any:
    """The request's JSON body (None if it is not JSON), or its form fields (a dependency:
    read on the event loop before a sync view runs in the thread pool)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return await context.read_form(request)
    try:
        return await request.json()
    except ValueError:
        return None


JsonBody = Annotated[Any, Depends(json_body)]  # a view's parameter: the body, read before the view runs


def _redis_down(exc: RedisError) -> JSONResponse:
    log.warning("%s: Redis unavailable: %s", context.request().url.path, exc)
    return error(503, "data store unavailable: try again in a moment")


def create_auth_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["session"])
    errors: dict[int | str, dict[str, Any]] = {status: {"model": answers.Error} for status in (400, 401, 429, 503)}

    @router.post("/login", response_model=answers.Login, responses=errors,
                 summary="Log in (starts a session cookie; answers the CSRF token)",
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "properties": {"username": {"type": "string"},
                                                      "password": {"type": "string"}}}}}}})
    def api_login(body: JsonBody) -> Any:
        if not isinstance(body, dict):
            return error(400, "send {\"username\": ..., \"password\": ...}")
        name, password = str(body.get("username") or ""), str(body.get("password") or "")
        if not name or not password:
            return error(400, "username and password are required")
        try:
            status, message = login(name, password)
        except RedisError as exc:
            return _redis_down(exc)
        if status != 200:
            response = error(status, message)
            if status == 429:
                response.headers["Retry-After"] = message.split()[-2]
            return response
        who = current_principal()
        assert who is not None
        answer: answers.Login = {"user": who.name, "role": str(who.role), "lines": list(who.lines),
                                 "csrf": csrf_token()}
        return JSONResponse(answer)

    @router.post("/logout", response_model=answers.Logout, responses={503: {"model": answers.Error}},
                 summary="End the session")
    def api_logout() -> Any:
        try:
            logout()
        except RedisError as exc:
            return _redis_down(exc)
        logged_out: answers.Logout = {"user": None}
        return JSONResponse(logged_out)

    @router.get("/session", response_model=answers.Session, responses={503: {"model": answers.Error}},
                summary="Who is logged in, with the CSRF token for writes")
    def api_session() -> Any:
        try:
            who = current_principal()
        except RedisError as exc:
            return _redis_down(exc)
        if who is None:
            nobody: answers.Session = {"user": None, "require_login": auth().require_login}
            return JSONResponse(nobody)
        body: answers.Session = {"user": who.name, "role": str(who.role), "lines": list(who.lines), "kind": who.kind}
        if who.kind == "user":
            body["csrf"] = csrf_token()
        return JSONResponse(body)

    return router


def install(server: FastAPI, the_auth: Auth) -> None:
    """The login routes and the auth rules' services on ``server``; the session cookie and
    the login gate are middleware (``session_middleware``, ``LoginGate``)."""
    context.config_of(server)[AUTH_KEY] = the_auth
    server.include_router(create_auth_router())


def session_middleware(server: FastAPI, secret: str, secure_cookies: bool = False) -> None:
    """The signed session cookie: HttpOnly, SameSite=Lax, Secure behind TLS, 12 h."""
    server.add_middleware(SessionMiddleware, secret_key=secret, session_cookie="plant_session",
                          max_age=SESSION_HOURS * 3600, same_site="lax", https_only=secure_cookies)


class LoginGate:
    """With ``require_login``: every page, callback and API read needs a login (a 401 for
    the API and callbacks, a redirect to ``/login`` for pages)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not context.has_request() or not installed() or not auth().require_login:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        try:
            if current_principal() is not None:
                await self.app(scope, receive, send)
                return
            if path.startswith("/api/") or path.startswith("/_dash"):
                answer: Response = error(401, "login required: log in at /login, or send Authorization: Bearer <token>")
            else:
                answer = RedirectResponse(f"/login?next={quote(path)}", status_code=303)
        except RedisError as exc:
            answer = _redis_down(exc)
        await answer(scope, receive, send)
