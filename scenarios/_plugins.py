"""The scenario registry and its lookups, without the scenario classes.

The built-in scenarios register lazily, so listing the names (every CLI parser's ``--scenario``
choices) imports neither the scenario configs nor pydantic; a plugin registered anywhere else
(``scenario_presets.register("Name")``) is listed and accepted the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common import Registry

if TYPE_CHECKING:
    from scenarios._scenario import LoadGenScenario, Scenario

scenario_presets: Registry[Scenario] = Registry("scenario")
for _name in ("Server", "Interactive", "Offline", "SingleStream", "MultiStream"):
    scenario_presets.register_lazy(_name, f"scenarios._scenario:{_name}Scenario")


def scenario_names() -> list[str]:
    return scenario_presets.names()


def scenario_class(name: str) -> type[Scenario]:
    """The registered plugin class (raises RegistryError, one line, for an unknown name)."""
    return scenario_presets.get(name)


def get_scenario(name: str, **config: object) -> Scenario:
    """The plugin for ``name`` with its default config (``config`` overrides fields)."""
    return scenario_presets.create({**config, "kind": name}, where=f"scenario {name}")


def loadgen_scenario(name: str) -> LoadGenScenario:
    """The LoadGen scenario a scenario runs as (Interactive -> Server)."""
    return scenario_class(name).loadgen_scenario
