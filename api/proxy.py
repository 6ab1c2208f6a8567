"""Behind ``PROXY_HOPS`` trusted reverse proxies: the client's address and scheme from
the ``X-Forwarded-For`` / ``X-Forwarded-Proto`` entries those proxies appended."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class ProxyHeaders:
    def __init__(self, app: ASGIApp, hops: int = 1) -> None:
        self.app = app
        self.hops = hops

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope["headers"])
            forwarded = [p.strip() for p in headers.get(b"x-forwarded-for", b"").decode("latin-1").split(",")]
            forwarded = [p for p in forwarded if p]
            if len(forwarded) >= self.hops:
                port = scope["client"][1] if scope.get("client") else 0
                scope = {**scope, "client": (forwarded[-self.hops], port)}
            proto = [p.strip() for p in headers.get(b"x-forwarded-proto", b"").decode("latin-1").split(",") if p]
            if len(proto) >= self.hops and proto[-self.hops] in ("http", "https"):
                scheme = proto[-self.hops]
                if scope["type"] == "websocket":
                    scheme = "wss" if scheme == "https" else "ws"
                scope = {**scope, "scheme": scheme}
        await self.app(scope, receive, send)
