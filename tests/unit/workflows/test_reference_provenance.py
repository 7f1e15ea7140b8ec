"""The reference set's provenance.json is a typed record: the shipped file validates and is rewritten byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from scenarios import EMBEDDED_DATASET
from workflows._reference_build import ReferenceSetProvenance

PROVENANCE = Path(EMBEDDED_DATASET).parent / "provenance.json"


def test_shipped_provenance_round_trips() -> None:
    text = PROVENANCE.read_text()
    prov = ReferenceSetProvenance.model_validate_json(text)
    assert set(prov.recordings) == {"fp32", "bf16", "int8"}
    assert prov.recordings["fp32"].identical_to_fp32 == prov.prompt_writer.n
    # The build writes model_dump(mode="json") with sorted keys: the same bytes as the shipped file.
    assert json.dumps(prov.model_dump(mode="json"), indent=2, sort_keys=True) + "\n" == text


def test_an_unknown_or_missing_field_is_refused() -> None:
    raw = json.loads(PROVENANCE.read_text())
    raw["recordings"]["int8"]["identical_to_fp32_rate"] = 0.01
    with pytest.raises(ValidationError, match="identical_to_fp32_rate"):
        ReferenceSetProvenance.model_validate(raw)
    raw = json.loads(PROVENANCE.read_text())
    del raw["model_sha256"]
    with pytest.raises(ValidationError, match="model_sha256"):
        ReferenceSetProvenance.model_validate(raw)
