"""The base class of a plugin's own settings, its ``[plugins.<name>]`` table.

A plugin declares its settings with a class attribute ``settings_model``, a
subclass of :class:`PluginSettings` (a frozen pydantic model that rejects
unknown keys). rollcall validates the plugin's ``[plugins.<name>]`` table of
``config.toml`` and its ``ROLLCALL_PLUGINS_<NAME>_<KEY>`` environment
variables against it and hands the result to the plugin as its ``settings``
attribute; see ``docs/plugins.md``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PluginSettings(BaseModel):
    """Base of a plugin's settings model: frozen, unknown keys rejected, defaults validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
