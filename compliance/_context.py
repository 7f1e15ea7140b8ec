"""Context-length probe: does the SUT serve the whole context its artifact advertises?

It reads ``max_context_tokens`` through ``GetArtifact`` and sends one request at 50%, 90%, 99% and
100% of that limit (prompt + max_new_tokens) and one a token over. Within the limit each request must
finish with a complete output: finish reason EOS (ending in the EOS id, at most max_new_tokens) or
LENGTH (exactly max_new_tokens). Over the limit the SUT must refuse with RESOURCE_EXHAUSTED; success
or any other status fails. This is the check that catches "advertised 131K, capped at 16K".
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common import first_error_line
from compliance._accuracy_log import ComplianceInputError

if TYPE_CHECKING:
    from loadgen_harness import TransportSecurity

DEFAULT_FRACTIONS = (0.5, 0.9, 0.99, 1.0)
Expect = Literal["complete", "refused"]
# Long prompts are large messages (131072 ids is ~0.5 MB); lift gRPC's 4 MB default for safety.
_CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


class ContextProbeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fractions: tuple[float, ...] = Field(default=DEFAULT_FRACTIONS, min_length=1)
    max_new_tokens: int = Field(default=16, gt=0, description="kept small: the probe is about the prompt")
    timeout_s: float = Field(default=120.0, gt=0, description="per request")
    probe_over: bool = Field(default=True, description="also send one token over the limit")


class ProbeTarget(BaseModel):
    """The manifest fields the probe relies on, as the SUT advertises them through GetArtifact.

    Other manifest fields are ignored: the probe must run against any SUT that states its context.
    """

    model_config = ConfigDict(extra="ignore")

    artifact_id: str = ""
    max_context_tokens: int = 0
    eos_token_id: int = 0
    vocab_size: int = Field(default=0, ge=0)


class ProbeAttempt(BaseModel):
    label: str
    total_tokens: int = Field(description="prompt + max_new_tokens")
    prompt_tokens: int
    max_new_tokens: int
    expect: Expect
    status: str = Field(description="gRPC status name, OK on success")
    detail: str = ""
    n_tokens: int = 0
    finish_reason: str = ""
    elapsed_s: float = 0.0
    passed: bool
    reason: str = ""


class ContextVerdict(BaseModel):
    """Pydantic verdict; ``message`` names the first failing length."""

    address: str
    artifact_id: str
    advertised_context_tokens: int
    eos_token_id: int
    attempts: list[ProbeAttempt]
    passed: bool
    first_failure_tokens: int | None = None
    message: str


def probe_lengths(limit: int, cfg: ContextProbeConfig) -> list[tuple[str, int, int, Expect]]:
    """(label, total, max_new_tokens, expect) for each probe, in increasing length, duplicates dropped."""
    max_new = max(1, min(cfg.max_new_tokens, limit // 4))
    seen: set[int] = set()
    out: list[tuple[str, int, int, Expect]] = []
    for frac in sorted(cfg.fractions):
        total = max(max_new + 1, int(limit * frac))
        if total > limit or total in seen:
            continue
        seen.add(total)
        out.append((f"{frac * 100:g}%", total, max_new, "complete"))
    if cfg.probe_over:
        out.append(("limit+1", limit + 1, max_new, "refused"))
    return out


def prompt_ids(n: int, eos_token_id: int, vocab_size: int) -> list[int]:
    """A deterministic prompt of n ids that avoids EOS and stays inside the vocabulary."""
    span = max(2, min(vocab_size, 32000) - 3) if vocab_size > 4 else 1000
    ids = [3 + (i * 7919) % span for i in range(n)]
    return [t + 1 if t == eos_token_id else t for t in ids]


def read_manifest(stub: Any, timeout_s: float, address: str = "") -> ProbeTarget:
    """The SUT's manifest (its manifest_json, else the message's own fields) as a :class:`ProbeTarget`."""
    from google.protobuf.json_format import MessageToDict

    from proto import inference_pb2

    m = stub.GetArtifact(inference_pb2.GetArtifactRequest(), timeout=timeout_s, wait_for_ready=True)
    raw: object = None
    if m.manifest_json:
        try:
            raw = json.loads(m.manifest_json)
        except json.JSONDecodeError:
            raw = None  # an unreadable manifest_json: the message's own fields still state the context
    if not isinstance(raw, dict):
        raw = MessageToDict(m, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    try:
        return ProbeTarget.model_validate(raw)
    except ValidationError as exc:
        raise ComplianceInputError(first_error_line(exc, f"sut {address}: artifact manifest")) from None


def _attempt(
    stub: Any, label: str, total: int, max_new: int, expect: Expect, man: ProbeTarget, timeout_s: float
) -> ProbeAttempt:
    import grpc

    from proto import inference_pb2

    eos = man.eos_token_id
    prompt_len = total - max_new
    req = inference_pb2.GenerateRequest(
        request_id=f"context-probe-{total}",
        input_ids=prompt_ids(prompt_len, eos, man.vocab_size),
        max_new_tokens=max_new,
        eos_token_id=-1,
    )
    base = ProbeAttempt(
        label=label,
        total_tokens=total,
        prompt_tokens=prompt_len,
        max_new_tokens=max_new,
        expect=expect,
        status="",
        passed=False,
    )
    tokens: list[int] = []
    answer: list[int] | None = None
    finish = inference_pb2.FINISH_REASON_UNSPECIFIED
    t0 = time.monotonic()
    try:
        for chunk in stub.Generate(req, timeout=timeout_s):
            tokens.extend(chunk.token_ids)
            if chunk.output_ids:
                answer = list(chunk.output_ids)
            if chunk.finish_reason != inference_pb2.FINISH_REASON_UNSPECIFIED:
                finish = chunk.finish_reason
    except grpc.RpcError as exc:
        code, details = exc.code(), (exc.details() or "").strip()
        elapsed = time.monotonic() - t0
        failed = base.model_copy(update={"status": code.name, "detail": details, "elapsed_s": elapsed})
        if expect == "refused" and code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return failed.model_copy(update={"passed": True})
        why = "refused with the wrong status" if expect == "refused" else "request within the limit failed"
        return failed.model_copy(update={"reason": f"{why}: {details}"})
    elapsed = time.monotonic() - t0
    out = answer if answer is not None else tokens
    finish_name = inference_pb2.FinishReason.Name(finish).removeprefix("FINISH_REASON_")
    served = base.model_copy(
        update={"status": "OK", "n_tokens": len(out), "finish_reason": finish_name, "elapsed_s": elapsed}
    )
    if expect == "refused":
        return served.model_copy(
            update={"reason": f"accepted {total} tokens, over the limit; expected RESOURCE_EXHAUSTED"}
        )
    if finish == inference_pb2.FINISH_REASON_LENGTH and len(out) != max_new:
        reason = f"finish LENGTH after {len(out)} tokens, expected {max_new}"
    elif finish == inference_pb2.FINISH_REASON_EOS and not (1 <= len(out) <= max_new and out[-1] == eos):
        reason = f"finish EOS but {len(out)} tokens ending in {out[-1] if out else 'nothing'} (EOS id {eos})"
    elif finish not in (inference_pb2.FINISH_REASON_EOS, inference_pb2.FINISH_REASON_LENGTH):
        reason = f"incomplete output: stream ended with finish reason {finish_name} after {len(out)} tokens"
    else:
        return served.model_copy(update={"passed": True})
    return served.model_copy(update={"reason": reason})


def probe_context(
    address: str, cfg: ContextProbeConfig | None = None, transport: TransportSecurity | None = None
) -> ContextVerdict:
    """Probe the SUT at ``address`` (TLS/token per ``transport``); every probe runs, the verdict names the
    first failure."""
    import grpc

    from loadgen_harness import describe_failure, open_channel
    from proto import inference_pb2_grpc

    cfg = cfg or ContextProbeConfig()
    with open_channel(address, transport, options=_CHANNEL_OPTIONS) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)
        try:
            man = read_manifest(stub, min(cfg.timeout_s, 30.0), address)
        except grpc.RpcError as exc:
            why = describe_failure(address, transport, exc)
            raise ComplianceInputError(
                why or f"sut {address}: GetArtifact failed ({exc.code().name}: {exc.details()})"
            ) from None
        limit = man.max_context_tokens
        if limit <= 1:
            raise ComplianceInputError(f"sut {address}: artifact field 'max_context_tokens': expected > 1, got {limit}")
        attempts = [
            _attempt(stub, label, total, max_new, expect, man, cfg.timeout_s)
            for label, total, max_new, expect in probe_lengths(limit, cfg)
        ]
    first = next((a for a in attempts if not a.passed), None)
    if first is None:
        served = [a.total_tokens for a in attempts if a.expect == "complete"]
        over = " and refused limit+1 with RESOURCE_EXHAUSTED" if cfg.probe_over else ""
        message = f"advertised {limit}, served {', '.join(map(str, served))} tokens{over}"
    else:
        status = f"status {first.status} '{first.detail}'" if first.status != "OK" else f"status OK ({first.reason})"
        message = f"advertised {limit}, failed at {first.total_tokens}: {status}"
    return ContextVerdict(
        address=address,
        artifact_id=man.artifact_id,
        advertised_context_tokens=limit,
        eos_token_id=man.eos_token_id,
        attempts=attempts,
        passed=first is None,
        first_failure_tokens=None if first is None else first.total_tokens,
        message=message,
    )
