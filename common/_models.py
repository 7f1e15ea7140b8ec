"""The bottom layer's pydantic pieces: the plugin config base and the run-id field type.

They live apart from the registry and the path checks so that importing ``common`` for those (every
CLI parser does) does not import pydantic; :mod:`common` exports these two on first use.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel

from common._paths import check_run_id


class PluginConfig(BaseModel):
    """Base for plugin configs; ``kind`` names the registered plugin."""

    kind: str


# A config field holding a run id: the same check wherever a run id names a directory.
RunId = Annotated[str, AfterValidator(check_run_id)]
