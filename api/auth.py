"""Who is calling: login and logout, sessions in signed cookies with CSRF protection,
``Authorization: Bearer`` tokens for machines, and the ``requires`` decorator that turns
"not logged in" into 401 and "not allowed" into 403, each with a clear JSON message.

Sessions are Flask's signed cookie (``SECRET_KEY``): it holds the user name, the
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
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Flask, Response, current_app, g, jsonify, redirect, request, session
from redis.exceptions import RedisError

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


def auth() -> Auth:
    return current_app.config[AUTH_KEY]  # type: ignore[no-any-return]


def client_addr() -> str:
    """The caller's address (behind a reverse proxy, wrap the app in werkzeug's ProxyFix)."""
    try:
        return request.remote_addr or "-"
    except RuntimeError:
        return "-"


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
    # written whole under a private name, then linked into place: gunicorn workers starting
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
    if "principal" in g:
        return g.principal  # type: ignore[no-any-return]
    who: Principal | None = None
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        who = auth().users.token_principal(header[7:].strip())
        g.bad_token = who is None
    elif session.get("u"):
        name, users = str(session["u"]), auth().users
        user = users.get(name)
        if (user is not None and not user.disabled and user.session_version == session.get("sv")
                and users.session_user(str(session.get("sid") or "")) == name):
            who = user.principal()
        else:
            session.clear()
    g.principal = who
    return who


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def csrf_ok() -> bool:
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    expected = session.get("csrf") or ""
    return bool(expected) and hmac.compare_digest(str(sent), str(expected))


def error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="plant"'
    return response


def check(action: Action, line: str | None, write: bool = True) -> Principal | Response:
    """The caller if it may do ``action`` on ``line``; else the 401/403 answer (a write
    by a session must carry the CSRF token)."""
    who = current_principal()
    if who is None:
        if g.get("bad_token"):
            return error(401, "invalid or revoked API token")
        return error(401, "login required: log in at /login, or send Authorization: Bearer <token>")
    if write and who.kind == "user" and not csrf_ok():
        return error(403, f"CSRF token missing or wrong: send the {CSRF_HEADER} header (GET /api/session gives it)")
    why = refusal(who, action, line)
    if why is not None:
        auth().record(who, "denied", line=line, target=f"{request.method} {request.path}", after=why, ok=False)
        return error(403, f"forbidden: {why}")
    return who


def requires(action: Action, line_arg: str | None = "line") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for write views: 401 without credentials, 404 for an unknown line, 403
    for a role or line not allowed; the view gets the caller as ``who``."""
    def deco(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            line = kwargs.get(line_arg) if line_arg else None
            result = check(action, line)
            if isinstance(result, Response):
                return result
            if line is not None and auth().plant.line(line) is None:
                return error(404, f"unknown line {line!r}")
            return view(*args, who=result, **kwargs)
        return wrapper
    return deco


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
    session.clear()
    session.permanent = True
    sid = a.users.start_session(user.name, SESSION_HOURS * 3600)
    session.update({"u": user.name, "sv": user.session_version, "sid": sid})
    csrf_token()
    g.principal = user.principal()
    a.record(user.principal(), "login")
    return 200, "logged in"


def logout() -> None:
    """Ends this session on the server too: a copy of the cookie no longer logs anyone in."""
    who = current_principal()
    if who is not None and who.kind == "user":
        auth().record(who, "logout")
    auth().users.end_session(str(session.get("sid") or ""))
    session.clear()


def safe_next(target: str | None) -> str:
    """A local path to go to after the login (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def create_auth_blueprint() -> Blueprint:
    bp = Blueprint("auth", __name__)

    @bp.errorhandler(RedisError)
    def redis_down(exc: RedisError) -> Any:
        log.warning("%s: Redis unavailable: %s", request.path, exc)
        return error(503, "data store unavailable: try again in a moment")

    @bp.post("/api/login")
    def api_login() -> Any:
        body: Any = request.get_json(silent=True) if request.is_json else request.form
        if not isinstance(body, dict) and not hasattr(body, "get"):
            return error(400, "send {\"username\": ..., \"password\": ...}")
        name, password = str(body.get("username") or ""), str(body.get("password") or "")
        if not name or not password:
            return error(400, "username and password are required")
        status, message = login(name, password)
        if status != 200:
            response = error(status, message)
            if status == 429:
                response.headers["Retry-After"] = message.split()[-2]
            return response
        who = current_principal()
        assert who is not None
        answer: answers.Login = {"user": who.name, "role": str(who.role), "lines": list(who.lines),
                                 "csrf": csrf_token()}
        return jsonify(answer)

    @bp.post("/api/logout")
    def api_logout() -> Any:
        logout()
        logged_out: answers.Logout = {"user": None}
        return jsonify(logged_out)

    @bp.get("/api/session")
    def api_session() -> Any:
        who = current_principal()
        if who is None:
            nobody: answers.Session = {"user": None, "require_login": auth().require_login}
            return jsonify(nobody)
        body: answers.Session = {"user": who.name, "role": str(who.role), "lines": list(who.lines), "kind": who.kind}
        if who.kind == "user":
            body["csrf"] = csrf_token()
        return jsonify(body)

    return bp


def install(server: Flask, the_auth: Auth, secret: str, secure_cookies: bool = False) -> None:
    """Sessions, the login routes and (with ``require_login``) the gate in front of
    everything else."""
    server.config.update({
        AUTH_KEY: the_auth,
        "SECRET_KEY": secret,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": secure_cookies,
        "SESSION_COOKIE_NAME": "plant_session",
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=SESSION_HOURS),
    })
    server.register_blueprint(create_auth_blueprint())

    @server.before_request
    def gate() -> Any:
        if not auth().require_login:
            return None
        path = request.path
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return None
        try:
            if current_principal() is not None:
                return None
        except RedisError as exc:
            log.warning("%s: Redis unavailable: %s", path, exc)
            return error(503, "data store unavailable: try again in a moment")
        if path.startswith("/api/") or path.startswith("/_dash"):
            return error(401, "login required: log in at /login, or send Authorization: Bearer <token>")
        return redirect(f"/login?next={quote(path)}", code=303)
