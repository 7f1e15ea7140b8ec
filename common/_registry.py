"""One plugin pattern for the whole project: ``register("name")`` plus ``create(config)``.

Backends, scenarios and scorers each own a :class:`Registry`. A plugin class names its pydantic
config model in ``config_model``; the config's ``kind`` field selects the plugin. Built-in plugins
are registered lazily by ``"module:Class"`` path so that, for example, listing backends never
imports torch. This module imports pydantic only to validate a config: a CLI parser lists plugin
names and flags without it (the config base class is :class:`common.PluginConfig`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from common._errors import UsageError

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

T = TypeVar("T")


class RegistryError(UsageError):
    """Unknown plugin name or an invalid plugin config, with one readable line."""


def first_error_line(exc: ValidationError, where: str) -> str:
    """Turn a pydantic error into one line that names the field and what was expected."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "<root>"
    return f"{where}: field '{loc}': {err.get('msg', 'invalid value')}"


class Registry(Generic[T]):
    def __init__(self, what: str) -> None:
        self.what = what
        self._classes: dict[str, type[T]] = {}
        self._lazy: dict[str, str] = {}
        self._hooks: dict[str, dict[str, str]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def deco(cls: type[T]) -> type[T]:
            self._claim(name)
            self._classes[name] = cls
            return cls

        return deco

    def register_lazy(self, name: str, target: str, hooks: Mapping[str, str] | None = None) -> None:
        """Register ``"package.module:Class"``; the module is imported on first use.

        ``hooks`` maps the plugin's optional hooks (``add_arguments``, ...) to ``"module:function"``
        paths, so :meth:`hook` serves them without importing the plugin, and answers None for any
        other; with ``hooks=None`` :meth:`hook` asks the plugin class.
        """
        self._claim(name)
        self._lazy[name] = target
        if hooks is not None:
            self._hooks[name] = dict(hooks)

    def _claim(self, name: str) -> None:
        # A second registration under one name would silently replace the first plugin.
        if name in self._classes or name in self._lazy:
            raise RegistryError(f"{self.what} '{name}' is already registered")

    def unregister(self, name: str) -> None:
        """Forget a plugin (a test's throwaway plugin); unknown names are ignored."""
        self._classes.pop(name, None)
        self._lazy.pop(name, None)
        self._hooks.pop(name, None)

    def names(self) -> list[str]:
        return sorted(set(self._classes) | set(self._lazy))

    def get(self, name: str) -> type[T]:
        if name not in self._classes and name in self._lazy:
            module, _, attr = self._lazy[name].partition(":")
            mod = importlib.import_module(module)
            self._classes[name] = getattr(mod, attr)
            del self._lazy[name]
        try:
            return self._classes[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.what} kind '{name}'; expected one of: {', '.join(self.names())}"
            ) from None

    def hook(self, name: str, attr: str) -> Any:
        """The plugin's optional hook ``attr`` (a class attribute, or one named at registration), else None.

        Building a CLI parser asks every plugin for its flags: a plugin registered with its hooks
        named is not imported for that.
        """
        declared = self._hooks.get(name)
        if declared is None:
            return getattr(self.get(name), attr, None)
        if attr not in declared:
            return None
        module, _, func = declared[attr].partition(":")
        return getattr(importlib.import_module(module), func)

    def config_model(self, name: str) -> type[BaseModel]:
        cls = self.get(name)
        model = getattr(cls, "config_model", None)
        if model is None:
            raise RegistryError(f"{self.what} '{name}' declares no config_model")
        return model  # type: ignore[no-any-return]

    def parse_config(self, config: BaseModel | Mapping[str, Any], where: str = "config") -> BaseModel:
        from pydantic import BaseModel, ValidationError

        raw = config.model_dump() if isinstance(config, BaseModel) else dict(config)
        kind = raw.get("kind")
        if not isinstance(kind, str) or not kind:
            raise RegistryError(f"{where}: field 'kind': expected one of: {', '.join(self.names())}")
        model = self.config_model(kind)
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            raise RegistryError(first_error_line(exc, where)) from None

    def create(self, config: BaseModel | Mapping[str, Any], where: str = "config") -> T:
        parsed = self.parse_config(config, where)
        cls = self.get(parsed.kind)  # type: ignore[attr-defined]
        return cls(parsed)  # type: ignore[call-arg]
