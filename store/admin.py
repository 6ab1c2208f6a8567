"""``python app.py users|tokens|audit ...``: manage users and API tokens and check the
audit trail from the command line (the plant's first admin is made here).

Passwords are read without echo (``getpass``, twice) or, with ``--password-stdin``,
as one line from standard input (for scripts); they are never printed or logged. A new
API token is printed once, on standard output only: store it in the client's secret
store; only its hash is kept. Every change is written to the audit trail with the
operating-system user as the actor.

Without ``REDIS_URL`` the commands use the embedded Redis of ``python app.py`` (its
data directory): the running one if there is one, else it is started for the command.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

from domain.roles import Role
from store.audit import AuditTrail
from store.users import UserError, Users

GROUPS = ("users", "tokens", "audit")


def add_parsers(add: Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]) -> None:
    roles = [r.value for r in Role]
    users = add("users", cmd_users, "manage users: add, list, disable, enable, passwd")
    users_sub = users.add_subparsers(dest="action", required=True)
    p = users_sub.add_parser("add", help="add a user")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=roles)
    p.add_argument("--lines", default="*", help="lines the user works on, comma separated, or * (default)")
    p.add_argument("--password-stdin", action="store_true", help="read the password as one line from stdin")
    users_sub.add_parser("list", help="list users")
    for action in ("disable", "enable"):
        users_sub.add_parser(action, help=f"{action} a user (ends their sessions)").add_argument("name")
    p = users_sub.add_parser("passwd", help="set a user's password (ends their sessions)")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true")

    tokens = add("tokens", cmd_tokens, "API tokens for machines: create, list, revoke")
    tokens_sub = tokens.add_subparsers(dest="action", required=True)
    p = tokens_sub.add_parser("create", help="create a token (printed once)")
    p.add_argument("label")
    p.add_argument("--role", required=True, choices=roles)
    p.add_argument("--lines", default="*")
    tokens_sub.add_parser("list", help="list tokens (ids, never the tokens)")
    tokens_sub.add_parser("revoke", help="revoke a token by its id (prefix)").add_argument("id")

    audit = add("audit", cmd_audit, "the audit trail: verify the hash chain, export it")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    audit_sub.add_parser("verify", help="check every entry's hash and the chain; exit 1 when broken")
    audit_sub.add_parser("export", help="print every entry as JSON lines")


@contextlib.contextmanager
def _redis(args: argparse.Namespace) -> Iterator[tuple[redis.Redis, Any]]:
    from config.settings import Settings
    from store.clients import client_for, node
    from store.embedded import PORT_FILENAME, EmbeddedRedis

    settings = Settings.from_env(plant_path=args.plant)
    if settings.redis_url:
        client = client_for(settings, "tool")
        yield client, settings.plant
        client.close()
        return
    data_dir = settings.data_dir / "redis"
    with contextlib.suppress(OSError, ValueError, redis.RedisError):
        port = int((data_dir / PORT_FILENAME).read_text())
        client = node(f"redis://127.0.0.1:{port}", socket_connect_timeout=1)
        client.ping()
        yield client, settings.plant
        client.close()
        return
    embedded = EmbeddedRedis(data_dir)
    client = node(embedded.start())
    try:
        yield client, settings.plant
    finally:
        client.close()
        embedded.stop()


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _record(client: redis.Redis, action: str, target: str, before: Any = None, after: Any = None) -> None:
    AuditTrail(client).append(ts=time.time(), actor=_actor(), kind="cli", role="admin", addr="local", action=action,
                              target=target, before=before, after=after)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise UserError("the passwords differ")
    return first


def cmd_users(args: argparse.Namespace) -> int:
    with _redis(args) as (client, plant):
        users = Users(client, [line.id for line in plant.lines])
        try:
            if args.action == "list":
                for u in users.all():
                    print(f"{u.name}\t{u.role}\t{','.join(u.lines)}\t{'disabled' if u.disabled else 'enabled'}")
                return 0
            if args.action == "add":
                user = users.add(args.name, args.role, args.lines, _password(args.password_stdin))
                _record(client, "user_add", user.name, after=user.public())
                print(f"user {user.name} added ({user.role}, lines {','.join(user.lines)})")
                return 0
            before = users.get(args.name)
            if args.action in ("disable", "enable"):
                users.set_disabled(args.name, args.action == "disable")
            else:
                users.set_password(args.name, _password(args.password_stdin))
            after = users.get(args.name)
            _record(client, f"user_{args.action}", args.name, before.public() if before else None,
                    {**after.public(), "password_changed": args.action == "passwd"} if after else None)
            print(f"user {args.name}: {args.action} done")
            return 0
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2


def cmd_tokens(args: argparse.Namespace) -> int:
    with _redis(args) as (client, plant):
        users = Users(client, [line.id for line in plant.lines])
        try:
            if args.action == "list":
                for t in users.tokens():
                    print(f"{t['id']}\t{t['name']}\t{t['role']}\t{','.join(t['lines'])}\t"
                          f"{'revoked' if t['disabled'] else 'active'}")
                return 0
            if args.action == "create":
                token, tid = users.create_token(args.label, args.role, args.lines, time.time())
                _record(client, "token_create", tid[:12], after={"label": args.label, "role": args.role,
                                                                 "lines": args.lines})
                print(f"token {tid[:12]} for {args.label} ({args.role}); shown once, keep it secret:", file=sys.stderr)
                print(token)
                return 0
            tid = users.revoke_token(args.id)
            _record(client, "token_revoke", tid[:12])
            print(f"token {tid[:12]} revoked")
            return 0
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2


def cmd_audit(args: argparse.Namespace) -> int:
    with _redis(args) as (client, _plant):
        trail = AuditTrail(client)
        if args.action == "export":
            for entry in trail.entries():
                print(json.dumps(entry) if isinstance(entry, dict) else repr(entry))
            return 0
        verdict = trail.verify()
        if verdict.ok:
            print(f"audit trail OK: {verdict.entries} entries, chain intact")
            return 0
        print(f"audit trail BROKEN: {verdict.problem}", file=sys.stderr)
        return 1

