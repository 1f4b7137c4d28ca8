"""Objects described by their constructor arguments."""

from __future__ import annotations

from typing import Any


class Configurable:
    """Mixin: ``get_config()`` returns the constructor arguments as JSON-compatible values,
    and the repr is ``ClassName(arg=value, ...)`` built from them."""

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, as JSON-compatible values."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({args})"
