"""Where the app keeps its settings, spelled out once.

Request-path code reads :func:`current_settings`; code that holds the app
(background threads, gunicorn hooks) reads :func:`settings_of`.
"""
from __future__ import annotations

from flask import Flask, current_app

from settings.model import Settings

_CONFIG_KEY = "SETTINGS"


def install(app: Flask, settings: Settings) -> None:
    app.config[_CONFIG_KEY] = settings


def settings_of(app: Flask) -> Settings:
    return app.config[_CONFIG_KEY]


def current_settings() -> Settings:
    """The settings of the app whose context is active."""
    return settings_of(current_app)
