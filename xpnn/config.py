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


def serialize(obj: Configurable) -> dict[str, Any]:
    """``{"class": ClassName, "config": obj.get_config()}``: what :func:`deserialize`
    rebuilds ``obj`` from."""
    return {"class": type(obj).__name__, "config": obj.get_config()}


def deserialize(spec: Any, base: type, what: str) -> Any:
    """Rebuild an object of a subclass of ``base`` from :func:`serialize`'s dict.

    The class is looked up by name among the subclasses of ``base`` that are already
    imported (xpnn's own, and a user's custom ones once their module is imported); nothing is
    ever imported or executed by name, so a file cannot make xpnn run code.
    """
    if not (isinstance(spec, dict) and isinstance(spec.get("class"), str)
            and isinstance(spec.get("config", {}), dict)):
        raise ValueError(f"a serialized {what} is {{'class': name, 'config': {{...}}}}, got "
                         f"{spec!r}")
    name = spec["class"]
    matches = {cls for cls in _subclasses(base) if cls.__name__ == name}
    if len(matches) != 1:
        reason = "is not known" if not matches else "is ambiguous (several classes share it)"
        known = sorted({cls.__name__ for cls in _subclasses(base)
                        if not cls.__name__.startswith("_")})
        raise ValueError(f"{what} class {name!r} {reason}; known: {known} (import the module "
                         "that defines a custom class before loading)")
    cls = matches.pop()
    try:
        return cls(**spec.get("config", {}))
    except TypeError as error:
        raise ValueError(f"cannot rebuild {what} {name} from its config "
                         f"{spec.get('config')}: {error}") from None


def _subclasses(base: type) -> list[type]:
    found = []
    for sub in base.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found
