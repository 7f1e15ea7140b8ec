"""The bottom layer's pydantic pieces: the plugin config base, the run-id and backend-spec field types,
typed JSON reads.

They live apart from the registry and the path checks so that importing ``common`` for those (every
CLI parser does) does not import pydantic; :mod:`common` exports these on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeAlias, TypeVar

from pydantic import AfterValidator, BaseModel, JsonValue, ValidationError

from common._errors import UsageError
from common._paths import check_run_id
from common._registry import first_error_line

M = TypeVar("M", bound=BaseModel)


class PluginConfig(BaseModel):
    """Base for plugin configs; ``kind`` names the registered plugin."""

    kind: str


# A config field holding a run id: the same check wherever a run id names a directory.
RunId = Annotated[str, AfterValidator(check_run_id)]

# A backend config before its backend's model validates it: ``{"kind": name, ...}``. It reaches a
# spawned SUT as one JSON document (``lpuperf serve --config JSON``), so its values are JSON values.
BackendSpec: TypeAlias = dict[str, JsonValue]


def read_model(path: str | Path, model: type[M], what: str, error: type[Exception] = UsageError) -> M:
    """``path`` read as ``model``'s JSON; otherwise ``error`` naming the file (and the field, when one is wrong).

    ``error`` lets a package keep raising its own exception type, as :func:`common.read_json` does.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{p}: cannot read {what} ({exc.__class__.__name__})") from None
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise error(first_error_line(exc, f"{p} ({what})")) from None
