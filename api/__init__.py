"""The HTTP API (``/api``): FastAPI routers the dashboard includes on its server."""

from api.routes import create_api_router

__all__ = ["create_api_router"]
