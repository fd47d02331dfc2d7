"""Configuration: read from the environment once, validated, passed down.

- ``model``: the frozen :class:`Settings` and the connection budget;
- ``loading``: :func:`load_settings` and the one-line errors of bad values;
- ``env_values``: parsing typed values out of environment variables;
- ``plans``: what can be bought;
- ``telegram``: Telegram's fixed facts (header, currency, periods);
- ``sandbox``: what stands in for Telegram in local sandbox mode (no BOT_TOKEN);
- ``current``: where the Flask app keeps its settings.
"""
from settings.current import current_settings, install, settings_of
from settings.env_values import ConfigError
from settings.loading import load_settings, load_settings_or_exit, normalize_database_url
from settings.model import BACKGROUND_CONNECTIONS, HEALTH_PROBE_CONNECTIONS, Settings

__all__ = [
    "BACKGROUND_CONNECTIONS", "HEALTH_PROBE_CONNECTIONS", "ConfigError", "Settings", "current_settings",
    "install", "load_settings", "load_settings_or_exit", "normalize_database_url", "settings_of",
]
