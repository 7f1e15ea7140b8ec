from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

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
    FINISH_REASON_TOOL_CALL: _ClassVar[FinishReason]
SAMPLING_GREEDY: Sampling
SAMPLING_RANDOM: Sampling
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_EOS: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_CANCELLED: FinishReason
FINISH_REASON_TOOL_CALL: FinishReason

class GenerateRequest(_message.Message):
    __slots__ = ("request_id", "input_ids", "prompt_text", "max_new_tokens", "min_new_tokens", "eos_token_id", "sampling", "temperature", "top_p", "seed", "allow_tool_call")
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
    ALLOW_TOOL_CALL_FIELD_NUMBER: _ClassVar[int]
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
    allow_tool_call: bool
    def __init__(self, request_id: _Optional[str] = ..., input_ids: _Optional[_Iterable[int]] = ..., prompt_text: _Optional[str] = ..., max_new_tokens: _Optional[int] = ..., min_new_tokens: _Optional[int] = ..., eos_token_id: _Optional[int] = ..., sampling: _Optional[_Union[Sampling, str]] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., seed: _Optional[int] = ..., allow_tool_call: _Optional[bool] = ...) -> None: ...

class GenerateChunk(_message.Message):
    __slots__ = ("token_ids", "finish_reason", "sut_arrival_ns", "sut_first_token_ns", "sut_last_token_ns", "n_tokens", "output_ids", "error", "replica_id", "reasoning_tokens", "n_reasoning_tokens", "sut_first_answer_ns", "cached_prompt_tokens")
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    SUT_ARRIVAL_NS_FIELD_NUMBER: _ClassVar[int]
    SUT_FIRST_TOKEN_NS_FIELD_NUMBER: _ClassVar[int]
    SUT_LAST_TOKEN_NS_FIELD_NUMBER: _ClassVar[int]
    N_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_IDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    N_REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SUT_FIRST_ANSWER_NS_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    finish_reason: FinishReason
    sut_arrival_ns: int
    sut_first_token_ns: int
    sut_last_token_ns: int
    n_tokens: int
    output_ids: _containers.RepeatedScalarFieldContainer[int]
    error: str
    replica_id: str
    reasoning_tokens: int
    n_reasoning_tokens: int
    sut_first_answer_ns: int
    cached_prompt_tokens: int
    def __init__(self, token_ids: _Optional[_Iterable[int]] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ..., sut_arrival_ns: _Optional[int] = ..., sut_first_token_ns: _Optional[int] = ..., sut_last_token_ns: _Optional[int] = ..., n_tokens: _Optional[int] = ..., output_ids: _Optional[_Iterable[int]] = ..., error: _Optional[str] = ..., replica_id: _Optional[str] = ..., reasoning_tokens: _Optional[int] = ..., n_reasoning_tokens: _Optional[int] = ..., sut_first_answer_ns: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ...) -> None: ...

class GetArtifactRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TimingModel(_message.Message):
    __slots__ = ("prefill_base_s", "prefill_per_token_s", "decode_step_s")
    PREFILL_BASE_S_FIELD_NUMBER: _ClassVar[int]
    PREFILL_PER_TOKEN_S_FIELD_NUMBER: _ClassVar[int]
    DECODE_STEP_S_FIELD_NUMBER: _ClassVar[int]
    prefill_base_s: float
    prefill_per_token_s: float
    decode_step_s: float
    def __init__(self, prefill_base_s: _Optional[float] = ..., prefill_per_token_s: _Optional[float] = ..., decode_step_s: _Optional[float] = ...) -> None: ...

class ArtifactManifest(_message.Message):
    __slots__ = ("artifact_id", "model", "precision", "max_context_tokens", "max_batch", "timing", "toolchain_version", "target", "checksum", "eos_token_id", "backend", "manifest_json", "replica_id")
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
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
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
    replica_id: str
    def __init__(self, artifact_id: _Optional[str] = ..., model: _Optional[str] = ..., precision: _Optional[str] = ..., max_context_tokens: _Optional[int] = ..., max_batch: _Optional[int] = ..., timing: _Optional[_Union[TimingModel, _Mapping]] = ..., toolchain_version: _Optional[str] = ..., target: _Optional[str] = ..., checksum: _Optional[str] = ..., eos_token_id: _Optional[int] = ..., backend: _Optional[str] = ..., manifest_json: _Optional[str] = ..., replica_id: _Optional[str] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("request_id", "context_ids", "continuation_ids")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_IDS_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_IDS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    context_ids: _containers.RepeatedScalarFieldContainer[int]
    continuation_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, request_id: _Optional[str] = ..., context_ids: _Optional[_Iterable[int]] = ..., continuation_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ScoreReply(_message.Message):
    __slots__ = ("logprobs", "greedy", "replica_id")
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    GREEDY_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    logprobs: _containers.RepeatedScalarFieldContainer[float]
    greedy: _containers.RepeatedScalarFieldContainer[bool]
    replica_id: str
    def __init__(self, logprobs: _Optional[_Iterable[float]] = ..., greedy: _Optional[_Iterable[bool]] = ..., replica_id: _Optional[str] = ...) -> None: ...
