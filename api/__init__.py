"""The HTTP API (``/api``): a Flask blueprint the lead registers on the Dash app's server."""

from api.routes import create_api_blueprint

__all__ = ["create_api_blueprint"]
