"""The login page: a plain HTML form (no script), served by the app at ``/login`` so it
works when every other page and Dash callback needs a login (``require_login``).
It posts to itself; ``api.auth`` checks, throttles and audits the attempt (the screens
call the API's rules; the API never imports a screen). ``install(server)`` adds the
page and ``POST /logout``."""

from __future__ import annotations

import re
from html import escape
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from redis.exceptions import RedisError
from starlette.responses import HTMLResponse, RedirectResponse, Response

from api import auth, context
from components.i18n import _, current


def install(server: FastAPI) -> None:
    """``/login`` (GET: the form, POST: log in and go on to ``?next=``) and ``POST /logout``."""

    async def login_page(request: Request) -> Response:
        fields = await context.read_form(request) if request.method == "POST" else {}
        target = auth.safe_next(fields.get("next") or request.query_params.get("next"))
        try:
            if request.method == "GET":
                return HTMLResponse(login_html(target, "", auth.current_principal()))
            status, message = auth.login(str(fields.get("username") or ""), str(fields.get("password") or ""))
        except RedisError:
            status, message = 503, "data store unavailable"
        if status == 200:
            return RedirectResponse(target, status_code=303)
        return HTMLResponse(login_html(target, page_message(status, message), None), status_code=status)

    async def logout_page() -> Response:
        auth.logout()
        return RedirectResponse("/", status_code=303)

    server.add_api_route("/login", login_page, methods=["GET", "POST"], include_in_schema=False)
    server.add_api_route("/logout", logout_page, methods=["POST"], include_in_schema=False)


def page_message(status: int, message: str) -> str:
    """The login check's answer (English, as the API gives it) in the page's language."""
    if status == 401:
        return _("wrong user name or password (or the user is disabled)")
    if status == 429:
        wait = re.search(r"(\d+) s", message)
        return _("too many failed logins: try again in {seconds} s").format(seconds=wait.group(1) if wait else "?")
    if status == 503:
        return _("the data store is not answering: try again in a moment")
    return message


def login_html(next_path: str, message: str, who: Any) -> str:
    already = ""
    if who is not None:
        already = (f'<p class="text-body-secondary">{escape(_("Logged in as"))} <strong>{escape(who.name)}</strong> '
                   f'({escape(str(who.role))}). <a href="{escape(next_path)}">{escape(_("Continue"))}</a></p>')
    alert = f'<div class="alert alert-danger" role="alert" id="login-error">{escape(message)}</div>' if message else ""
    return f"""<!DOCTYPE html>
<html lang="{current()}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(_("Log in"))}</title><link rel="stylesheet" href="/assets/00-bootstrap-5.3.9.min.css">
<link rel="stylesheet" href="/assets/10-dashboard.css"></head>
<body><main class="container py-5" style="max-width: 28rem">
<h1 class="h3 mb-4">{escape(_("Log in"))}</h1>{already}{alert}
<form method="post" action="/login?next={escape(quote(next_path))}">
<div class="mb-3"><label class="form-label" for="username">{escape(_("User name"))}</label>
<input class="form-control form-control-lg" id="username" name="username" autocomplete="username" required
 autocapitalize="none" maxlength="64"></div>
<div class="mb-3"><label class="form-label" for="password">{escape(_("Password"))}</label>
<input class="form-control form-control-lg" id="password" name="password" type="password"
 autocomplete="current-password" required maxlength="1024"></div>
<button class="btn btn-primary btn-lg w-100" id="login-submit" type="submit">{escape(_("Log in"))}</button>
</form><p class="mt-4"><a href="/">{escape(_("Back to the overview"))}</a></p></main></body></html>"""
