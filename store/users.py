"""Users, API tokens and failed-login throttling, in Redis (keys: ``domain.contract``).

Passwords are hashed with scrypt (memory-hard, in the standard library through
OpenSSL): n=2**14, r=8, p=1 (16 MiB per hash), a random 16-byte salt per user, the
parameters stored with the hash so they can be raised later. API tokens are random
32-byte values; only their SHA-256 is stored (a token has full entropy, so a slow
hash adds nothing), so a copy of Redis yields no usable token. Nothing here logs a
password or a token.

Throttling: after ``FREE_FAILURES`` failed logins for a user name or from an address,
each further attempt must wait ``2 ** (n - FREE_FAILURES)`` seconds (at most
``MAX_DELAY_S``) after the last failure; the counters expire ``WINDOW_S`` after the
last failure, and a successful login clears the user's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

import redis

from domain import answers, contract
from domain.roles import ALL_LINES, Principal, Role, parse_lines

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
FREE_FAILURES = 3
MAX_DELAY_S = 300.0
WINDOW_S = 900
NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
TOKEN_PREFIX = "pdt_"


class UserError(ValueError):
    """A request about users or tokens that cannot be done (the message says why)."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=SCRYPT_MAXMEM,
                            dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=SCRYPT_MAXMEM, dklen=len(base64.b64decode(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def check_new_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")


def token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    lines: tuple[str, ...]
    disabled: bool
    session_version: int

    def principal(self) -> Principal:
        return Principal(self.name, self.role, self.lines, "user")

    def public(self) -> answers.User:
        return {"name": self.name, "role": str(self.role), "lines": list(self.lines), "disabled": self.disabled}


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class Users:
    """Users and tokens of the plant. ``known_lines``: the plant's line ids (assignments
    are checked against them)."""

    def __init__(self, client: redis.Redis, known_lines: list[str]) -> None:
        self.redis = client
        self.known_lines = known_lines
        # a real scrypt hash to compare against when the user does not exist, so a
        # wrong name costs as long as a wrong password (no user enumeration by timing)
        self._dummy = hash_password(secrets.token_hex(8))

    # --- users -------------------------------------------------------------------------

    def get(self, name: str) -> User | None:
        if not NAME.match(name):
            return None
        data: Any = self.redis.hgetall(contract.user_key(name))
        if not data:
            return None
        fields = {_text(k): _text(v) for k, v in data.items()}
        return User(name, Role(fields["role"]), parse_lines(fields.get("lines", "")), fields.get("disabled") == "1",
                    int(fields.get("sv", "0")))

    def all(self) -> list[User]:
        names: Any = self.redis.smembers(contract.users_key())
        return [u for n in sorted(_text(x) for x in names) if (u := self.get(n)) is not None]

    def _lines(self, lines: str) -> tuple[str, ...]:
        parsed = parse_lines(lines)
        unknown = [line for line in parsed if line != ALL_LINES and line not in self.known_lines]
        if unknown:
            raise UserError(f"unknown line(s) {', '.join(unknown)} (lines: {', '.join(self.known_lines)}, or *)")
        return parsed

    def add(self, name: str, role: str, lines: str, password: str) -> User:
        if not NAME.match(name):
            raise UserError("a user name has 1 to 64 of A-Z a-z 0-9 _ . @ -")
        try:
            role_ = Role(role)
        except ValueError:
            raise UserError(f"role: one of {', '.join(r.value for r in Role)}") from None
        assigned = self._lines(lines)
        check_new_password(password)
        if not self.redis.sadd(contract.users_key(), name):
            raise UserError(f"user {name} exists")
        self.redis.hset(contract.user_key(name), mapping={"role": role_.value, "lines": ",".join(assigned),
                                                          "pw": hash_password(password), "disabled": "0", "sv": 0})
        return User(name, role_, assigned, False, 0)

    def set_password(self, name: str, password: str) -> None:
        self._existing(name)
        check_new_password(password)
        self.redis.hset(contract.user_key(name), "pw", hash_password(password))
        self.redis.hincrby(contract.user_key(name), "sv", 1)

    def set_disabled(self, name: str, disabled: bool) -> None:
        self._existing(name)
        self.redis.hset(contract.user_key(name), "disabled", "1" if disabled else "0")
        self.redis.hincrby(contract.user_key(name), "sv", 1)

    def _existing(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise UserError(f"no user {name}")
        return user

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the name and password match and the user is enabled."""
        user = self.get(name)
        stored: Any = self.redis.hget(contract.user_key(name), "pw") if user is not None else None
        good = check_password(password, _text(stored) if stored else self._dummy)
        if user is None or not stored or not good or user.disabled:
            return None
        return user

    # --- sessions ----------------------------------------------------------------------

    def start_session(self, name: str, ttl_s: int) -> str:
        """A new login session of ``name``: its random id (for the signed cookie; only its
        hash is stored, expiring after ``ttl_s``)."""
        sid = secrets.token_urlsafe(24)
        self.redis.set(contract.session_key(token_id(sid)), name, ex=ttl_s)
        return sid

    def session_user(self, sid: str) -> str | None:
        """The user of a live session (None: ended by logout, or expired)."""
        if not sid or len(sid) > 100:
            return None
        raw: Any = self.redis.get(contract.session_key(token_id(sid)))
        return _text(raw) if raw is not None else None

    def end_session(self, sid: str) -> None:
        if sid and len(sid) <= 100:
            self.redis.delete(contract.session_key(token_id(sid)))

    # --- throttling --------------------------------------------------------------------

    def wait_s(self, name: str, addr: str, now: float) -> float:
        """Seconds this login attempt must still wait (0: it may try)."""
        waits = [0.0]
        for key in (user_failures_key(name), contract.login_failures_key("addr", addr)):
            data: Any = self.redis.hgetall(key)
            n = int(data.get(b"n", 0))
            if n >= FREE_FAILURES:
                waits.append(float(data.get(b"last", 0)) + failure_delay_s(n) - now)
        return max(waits)

    def record_failure(self, name: str, addr: str, now: float) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            for key in (user_failures_key(name), contract.login_failures_key("addr", addr)):
                pipe.hincrby(key, "n", 1)
                pipe.hset(key, "last", now)
                pipe.expire(key, WINDOW_S)
            pipe.execute()

    def clear_failures(self, name: str) -> None:
        self.redis.delete(user_failures_key(name))

    # --- tokens ------------------------------------------------------------------------

    def create_token(self, label: str, role: str, lines: str, now: float) -> tuple[str, str]:
        """A new token for a machine client: (token, id). The token is shown once by the
        caller and never stored."""
        if not NAME.match(label):
            raise UserError("a token label has 1 to 64 of A-Z a-z 0-9 _ . @ -")
        try:
            role_ = Role(role)
        except ValueError:
            raise UserError(f"role: one of {', '.join(r.value for r in Role)}") from None
        assigned = self._lines(lines)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        tid = token_id(token)
        record = {"name": label, "role": role_.value, "lines": list(assigned), "created": now, "disabled": False}
        self.redis.hset(contract.tokens_key(), tid, json.dumps(record))
        return token, tid

    def tokens(self) -> list[dict[str, Any]]:
        data: Any = self.redis.hgetall(contract.tokens_key())
        return sorted(({"id": _text(k)[:12], **json.loads(v)} for k, v in data.items()), key=lambda t: t["created"])

    def revoke_token(self, prefix: str) -> str:
        data: Any = self.redis.hkeys(contract.tokens_key())
        matches = [_text(k) for k in data if _text(k).startswith(prefix)]
        if len(prefix) < 6 or len(matches) != 1:
            raise UserError("name a token by at least the first 6 characters of its id (python app.py tokens list)")
        record = json.loads(_text(self.redis.hget(contract.tokens_key(), matches[0])))
        record["disabled"] = True
        self.redis.hset(contract.tokens_key(), matches[0], json.dumps(record))
        return matches[0]

    def token_principal(self, token: str) -> Principal | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        raw: Any = self.redis.hget(contract.tokens_key(), token_id(token))
        if raw is None:
            return None
        record = json.loads(raw)
        if record.get("disabled"):
            return None
        return Principal(record["name"], Role(record["role"]), tuple(record["lines"]), "token")


def user_failures_key(name: str) -> str:
    """The failed-login counter of a user name, keyed by its hash: a password typed into
    the name field must not end up in a key name."""
    return contract.login_failures_key("user", hashlib.sha256(name.encode()).hexdigest()[:32])


def failure_delay_s(failures: int) -> float:
    """Wait after ``failures`` failed logins: none for the first ``FREE_FAILURES``, then
    1, 2, 4, ... s, at most ``MAX_DELAY_S``."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(2.0 ** (failures - FREE_FAILURES), MAX_DELAY_S)
