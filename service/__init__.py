"""The FastAPI service: create_app(settings)."""

from service.app import create_app

__all__ = ["create_app"]
