from collections.abc import Iterable as _Iterable
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper

DESCRIPTOR: _descriptor.FileDescriptor

class Sampling(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAMPLING_GREEDY: _ClassVar[Sampling]
    SAMPLING_RANDOM: _ClassVar[Sampling]

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_EOS: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_CANCELLED: _ClassVar[FinishReason]

SAMPLING_GREEDY: Sampling
SAMPLING_RANDOM: Sampling
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_EOS: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_CANCELLED: FinishReason

class GenerateRequest(_message.Message):
    __slots__ = (
        "eos_token_id",
        "input_ids",
        "max_new_tokens",
        "min_new_tokens",
        "prompt_text",
        "request_id",
        "sampling",
        "seed",
        "temperature",
        "top_p",
    )
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_IDS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MIN_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    EOS_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    input_ids: _containers.RepeatedScalarFieldContainer[int]
    prompt_text: str
    max_new_tokens: int
    min_new_tokens: int
    eos_token_id: int
    sampling: Sampling
    temperature: float
    top_p: float
    seed: int
    def __init__(
        self,
        request_id: str | None = ...,
        input_ids: _Iterable[int] | None = ...,
        prompt_text: str | None = ...,
        max_new_tokens: int | None = ...,
        min_new_tokens: int | None = ...,
        eos_token_id: int | None = ...,
        sampling: Sampling | str | None = ...,
        temperature: float | None = ...,
        top_p: float | None = ...,
        seed: int | None = ...,
    ) -> None: ...

class GenerateChunk(_message.Message):
    __slots__ = (
        "error",
        "finish_reason",
        "n_tokens",
        "output_ids",
        "sut_arrival_ns",
        "sut_first_token_ns",
        "sut_last_token_ns",
        "token_ids",
    )
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    SUT_ARRIVAL_NS_FIELD_NUMBER: _ClassVar[int]
    SUT_FIRST_TOKEN_NS_FIELD_NUMBER: _ClassVar[int]
    SUT_LAST_TOKEN_NS_FIELD_NUMBER: _ClassVar[int]
    N_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_IDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    finish_reason: FinishReason
    sut_arrival_ns: int
    sut_first_token_ns: int
    sut_last_token_ns: int
    n_tokens: int
    output_ids: _containers.RepeatedScalarFieldContainer[int]
    error: str
    def __init__(
        self,
        token_ids: _Iterable[int] | None = ...,
        finish_reason: FinishReason | str | None = ...,
        sut_arrival_ns: int | None = ...,
        sut_first_token_ns: int | None = ...,
        sut_last_token_ns: int | None = ...,
        n_tokens: int | None = ...,
        output_ids: _Iterable[int] | None = ...,
        error: str | None = ...,
    ) -> None: ...

class GetArtifactRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TimingModel(_message.Message):
    __slots__ = ("decode_step_s", "prefill_base_s", "prefill_per_token_s")
    PREFILL_BASE_S_FIELD_NUMBER: _ClassVar[int]
    PREFILL_PER_TOKEN_S_FIELD_NUMBER: _ClassVar[int]
    DECODE_STEP_S_FIELD_NUMBER: _ClassVar[int]
    prefill_base_s: float
    prefill_per_token_s: float
    decode_step_s: float
    def __init__(
        self,
        prefill_base_s: float | None = ...,
        prefill_per_token_s: float | None = ...,
        decode_step_s: float | None = ...,
    ) -> None: ...

class ArtifactManifest(_message.Message):
    __slots__ = (
        "artifact_id",
        "backend",
        "checksum",
        "eos_token_id",
        "manifest_json",
        "max_batch",
        "max_context_tokens",
        "model",
        "precision",
        "target",
        "timing",
        "toolchain_version",
    )
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    MAX_CONTEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    TOOLCHAIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    EOS_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    model: str
    precision: str
    max_context_tokens: int
    max_batch: int
    timing: TimingModel
    toolchain_version: str
    target: str
    checksum: str
    eos_token_id: int
    backend: str
    manifest_json: str
    def __init__(
        self,
        artifact_id: str | None = ...,
        model: str | None = ...,
        precision: str | None = ...,
        max_context_tokens: int | None = ...,
        max_batch: int | None = ...,
        timing: TimingModel | _Mapping | None = ...,
        toolchain_version: str | None = ...,
        target: str | None = ...,
        checksum: str | None = ...,
        eos_token_id: int | None = ...,
        backend: str | None = ...,
        manifest_json: str | None = ...,
    ) -> None: ...
