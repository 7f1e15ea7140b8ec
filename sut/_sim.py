"""Simulated LPU backend: replays reference outputs under a statically scheduled timing model.

Scheduling model (one scheduler task on the server's event loop):

* Time advances in *steps*. A step starts at an absolute time ``t``; every deadline is derived from
  the previous deadline, never from when the loop actually woke, so timing does not drift.
* At the start of a step, waiting requests join FIFO while ``len(active) < max_batch`` (continuous
  batching). Their prefills run back to back: ``P = sum(timing.prefill_s(len(prompt)))``. At
  ``t + P`` every joiner emits its first token.
* The decode phase then lasts ``decode_step_s``; at ``t + P + decode_step_s`` every active sequence
  that still has tokens left (joiners included) emits one token. The next step starts there.
* A sequence of ``L`` output tokens therefore holds its slot for ``max(1, L - 1)`` steps.
* When nothing is active or waiting the scheduler sleeps; the next step starts at the arrival time
  of the request that woke it. Same inputs and arrival times give the same tokens and times.

Steady-state capacity with a full batch ``B`` (see :func:`analytic_capacity_qps`): each step emits
``B`` decode tokens, so ``B / E[s]`` sequences finish (and join) per step, each adding ``E[prefill]``:
``qps_max = B / (E[s] * decode_step_s + B * E[prefill])`` with ``s = max(1, L - 1)``.

The zero-time artifact (all timings 0) bypasses the scheduler: the whole output is yielded at once
and the server streams it (first token alone, then chunks).

Reasoning artifacts (``sim-reasoning``, ``sim-reasoning-int8``) answer the packaged reasoning set
(``reasoning:deepseek-r1`` or ``reasoning:gpt-oss-120b``): a reasoning segment, then the answer, with the
reasoning count set once per request (``GenerateRequest.output_reasoning_tokens``) so the server marks
which streamed tokens are reasoning. The int8 artifact answers some ``math500`` problems wrong and
nothing else differently. ``reasoning_scale`` shortens every reasoning for quick runs (the manifest
says so). Any sim replaying a dataset whose references carry ``reference_reasoning_tokens`` reports them.

Prefix cache (optional, ``prefix_cache`` in the manifest; sut/_prefix_cache.py): at admission each joiner's
prompt meets the cache in FIFO order, and its prefill is charged only for the tokens not cached:
``prefill_s(len(prompt) - cached)``. The final chunk reports the cached count. Without a cache nothing changes.

Tool calls (sut/_tool_calls.py): a request with ``allow_tool_call`` is answered, for a deterministic share
``tool_calls.rate`` of prompts, with ``tool_calls.tokens`` pseudo tokens and finish reason ``tool_call``
instead of its reference answer. Without ``allow_tool_call`` the answer is always the reference.

Time comes from a :class:`~sut._clock.Clock`: the event loop's by default, or a virtual clock that
tests use to check the schedule with exact numbers, independent of how busy the machine is.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from scenarios.reasoning_set import parse_reasoning_spec, reasoning_outputs
from sut._artifact import ArtifactManifest, TimingModel, ToolCallSettings
from sut._backend import (
    ContextOverflowError,
    GenerateRequest,
    GenerationEnd,
    InvalidRequestError,
    OverloadedError,
    PrefixCacheStats,
    ScoreRequest,
    TokenScores,
)
from sut._clock import Clock, LoopClock
from sut._prefix_cache import PrefixCache
from sut._server import FinalTokens
from sut._sim_config import (
    DEFAULT_REASONING_DATASET,
    REASONING_ARTIFACTS,
    RECORDINGS_DIR,
    SIM_PRECISIONS,
    SIM_PRESETS,
    SIM_TARGET,
    SIM_VERSION,
    SimConfig,
    is_zero_time,
    reasoning_info,
    sim_manifest,
)
from sut._tool_calls import calls_tool

if TYPE_CHECKING:
    from scenarios.dataset import Dataset

__all__ = [
    "DEFAULT_REASONING_DATASET",
    "REASONING_ARTIFACTS",
    "SIM_PRECISIONS",
    "SIM_PRESETS",
    "SIM_TARGET",
    "SIM_VERSION",
    "SimBackend",
    "SimConfig",
    "analytic_capacity_qps",
    "sim_manifest",
]


_GREEDY_LOGPROB = math.log(0.99)  # the sim's scoring: its own next token
_OFF_LOGPROB = math.log(0.01)  # ... and the best any other token scores
_SCORED = ("context", "continuation")  # how a scoring request's context overflow names its parts


class _Seq:
    """One sequence in the scheduler. ``buf`` collects emitted tokens until the stream takes them."""

    __slots__ = (
        "aborted",
        "arrival",
        "buf",
        "cancelled",
        "done",
        "end",
        "n_cached",
        "n_prompt",
        "out",
        "pos",
        "prompt",
        "waiter",
    )

    def __init__(self, out: list[int], prompt: np.ndarray, arrival: float, end: GenerationEnd) -> None:
        self.out = out
        self.pos = 0
        self.prompt = prompt
        self.n_prompt = int(prompt.size)
        self.n_cached = 0  # leading prompt tokens the prefix cache held at admission
        self.end = end
        self.buf: list[int] = []
        self.waiter: asyncio.Future[None] | None = None
        self.done = False
        self.cancelled = False
        self.aborted = ""  # why the backend gave up on this sequence (stopped, scheduler failure)
        self.arrival = arrival

    def emit(self) -> None:
        self.buf.append(self.out[self.pos])
        self.pos += 1
        if self.pos >= len(self.out):
            self.done = True
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)


class SimBackend:
    """A deterministic simulated LPU that replays a dataset's reference outputs."""

    config_model: ClassVar[type[SimConfig]] = SimConfig

    def __init__(self, config: SimConfig, clock: Clock | None = None) -> None:
        from scenarios import resolve_dataset

        self.config = config
        self.dataset = resolve_dataset(config.dataset)
        eos = int(self.dataset.eos_token_id)
        vocab = 1 + max(int(r.max()) for r in [*self.dataset.reference_ids, *self.dataset.input_ids])
        reasoning_set = parse_reasoning_spec(config.dataset)
        info = reasoning_info(config, reasoning_set)
        self._manifest = sim_manifest(config, eos_token_id=eos, vocab_size=vocab, reasoning=info)
        self._eos = self._manifest.eos_token_id
        # Per sample, the leading reasoning tokens of its output; None: no sample reasons (the hot path skips it).
        self._reasoning: list[int] | None = None
        self._outputs_are_references = False  # replaying the dataset's own references (no recording)
        if reasoning_set is not None and info is not None:
            # Kept as Python lists: the answer is handed to the server as a list, and converting an array
            # per request was a visible share of the instant sim's CPU per query.
            self._outputs, self._reasoning = reasoning_outputs(
                reasoning_set[0].name, self._manifest.precision, info.reasoning_scale
            )
        else:
            self._outputs = [o.tolist() for o in self._load_outputs()]
            if self._outputs_are_references and self.dataset.has_reasoning:
                self._reasoning = [n or 0 for n in self.dataset.reference_reasoning]
        self._lookup: dict[bytes, int] = {}
        for i, ids in enumerate(self.dataset.input_ids):
            self._lookup.setdefault(np.ascontiguousarray(ids, dtype=np.int32).tobytes(), i)
        refs = np.unique(np.concatenate(self.dataset.reference_ids))
        self._pseudo_vocab = refs[refs != self._eos].astype(np.int32)
        if self._pseudo_vocab.size == 0:
            self._pseudo_vocab = np.array([self._eos + 1], dtype=np.int32)
        timing = self._manifest.timing or TimingModel()
        self._timing = timing
        self._zero_time = is_zero_time(timing)
        self._cache = PrefixCache(self._manifest.prefix_cache) if self._manifest.prefix_cache is not None else None
        self._tools = self._manifest.tool_calls or ToolCallSettings()
        self._waiting: deque[_Seq] = deque()
        self._active: list[_Seq] = []
        self._wake: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failure = ""
        self._busy_s = 0.0  # scheduled prefill + decode time so far (the power model's busy time)
        self._clock: Clock | None = clock  # None: the running loop's, bound in start()

    # ---- Backend protocol -------------------------------------------------------------------
    @property
    def manifest(self) -> ArtifactManifest:
        return self._manifest

    async def start(self) -> None:
        if not self._zero_time and self._task is None:
            loop = asyncio.get_running_loop()
            if self._clock is None:
                self._clock = LoopClock(loop)
            self._task = loop.create_task(self._scheduler())

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._abort_all("the backend stopped before the sequence finished")

    def _abort_all(self, why: str) -> None:
        for seq in [*self._active, *self._waiting]:
            seq.aborted = why
            if seq.waiter is not None and not seq.waiter.done():
                seq.waiter.set_result(None)
        self._active.clear()
        self._waiting.clear()

    def queue_depth(self) -> int:
        return len(self._waiting)

    def active_batch(self) -> int:
        return len(self._active)

    def busy_seconds(self) -> float:
        """Seconds of prefill and decode steps scheduled so far (sut ReportsBusyTime); 0 on a zero-time schedule."""
        return self._busy_s

    def prefix_cache_stats(self) -> PrefixCacheStats | None:
        """The prefix cache's running totals (sut ReportsPrefixCache); None when the artifact has none."""
        return self._cache.stats() if self._cache is not None else None

    def output_for(self, request: GenerateRequest) -> tuple[list[int], str]:
        """The answer the sim gives to a request, and its finish reason ("eos" | "length")."""
        out, finish, _ = self._output(request)
        return out, finish

    def _output(self, request: GenerateRequest) -> tuple[list[int], str, int]:
        """(answer, finish reason, how many of the answer's leading tokens are reasoning)."""
        key = np.ascontiguousarray(request.input_ids, dtype=np.int32).tobytes()
        if request.allow_tool_call and calls_tool(self._tools, key, request.seed):
            return self._tool_call(request, key)
        idx = self._lookup.get(key)
        out = self._outputs[idx][:] if idx is not None else self._pseudo_output(key)
        n_reasoning = self._reasoning[idx] if self._reasoning is not None and idx is not None else 0
        eos = self._eos
        if request.min_new_tokens > 0 and len(out) < request.min_new_tokens and out and out[-1] == eos:
            # A real model with EOS suppressed keeps going; extend deterministically before EOS.
            extra = self._pseudo_tokens(key + b"min", request.min_new_tokens - len(out) + 1)
            out = out[:-1] + extra + [eos]
        f = self._manifest.faults
        if f.duplicate_trailing_eos and out and out[-1] == eos:
            out = [*out, eos]
        if f.mid_sequence_eos and len(out) >= 3:
            out = list(out)
            out[len(out) // 2] = eos
        if len(out) > request.max_new_tokens:
            # Cut inside the reasoning, the answer never starts: every token sent is reasoning.
            return out[: request.max_new_tokens], "length", min(n_reasoning, request.max_new_tokens)
        return out, ("eos" if out and out[-1] == eos else "length"), n_reasoning

    def _tool_call(self, request: GenerateRequest, key: bytes) -> tuple[list[int], str, int]:
        """A tool call: ``tool_calls.tokens`` pseudo tokens (no EOS), at least min_new_tokens, cut at max_new_tokens
        (then finish "length", as a server reports a call cut short)."""
        request.output_tool_call = True
        n = max(self._tools.tokens, request.min_new_tokens)
        out = self._pseudo_tokens(key + b"tool-call", min(n, request.max_new_tokens))
        return out, ("tool_call" if n <= request.max_new_tokens else "length"), 0

    def immediate_answer(self, request: GenerateRequest) -> tuple[list[int], GenerationEnd] | None:
        """The whole answer at once on a zero-time schedule (see sut AnswersAtOnce); else None."""
        if not self._zero_time:
            return None
        streamed, end = self._answer(request)
        if self._cache is not None:
            end.cached_prompt_tokens = self._cache.admit(request.input_ids)
        return streamed, end

    def _answer(self, request: GenerateRequest) -> tuple[list[int], GenerationEnd]:
        """(the tokens as streamed, the authoritative end) for one request, faults applied."""
        self._check(request)
        out, finish, n_reasoning = self._output(request)
        if n_reasoning:
            request.output_reasoning_tokens = n_reasoning
        f = self._manifest.faults
        if f.batch_dependent_output and len(out) > 1 and (self._active or self._waiting):
            # Decided once per request at arrival (never per token): the batch it joins is larger than one.
            out = list(out)
            out[len(out) // 2 - 1] = self._other_token(out[len(out) // 2 - 1])
        streamed = out
        if f.wrong_first_token and out:
            streamed = [self._other_token(out[0]), *out[1:]]
        n_tokens = len(out) + 1 if f.n_tokens_off_by_one else len(out)
        end = GenerationEnd(
            n_tokens=n_tokens,
            output_ids=out if f.wrong_first_token else None,
            finish_reason=finish,
        )
        return streamed, end

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Sequence[int] | GenerationEnd]:
        streamed, end = self._answer(request)
        if self._zero_time:
            if self._cache is not None:
                end.cached_prompt_tokens = self._cache.admit(request.input_ids)
            yield FinalTokens(streamed)
            yield end
            return
        clock = self._clock
        if self._stopping or self._task is None or self._failure or clock is None:
            raise OverloadedError(self._failure or "the sim backend is not running")
        loop = asyncio.get_running_loop()
        seq = _Seq(streamed, request.input_ids, clock.now(), end)
        self._waiting.append(seq)
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)
        try:
            while True:
                if not seq.buf and not seq.done:
                    seq.waiter = loop.create_future()
                    await seq.waiter
                    seq.waiter = None
                if seq.aborted:
                    raise OverloadedError(seq.aborted)
                if seq.buf:
                    toks, seq.buf = seq.buf, []
                    yield FinalTokens(toks) if seq.done else toks
                if seq.done and not seq.buf:
                    break
        finally:
            if not seq.done:
                seq.cancelled = True
        yield end

    async def score(self, request: ScoreRequest) -> TokenScores:
        """Deterministic log-probabilities consistent with the sim's own answers (sut ScoresContinuations).

        At each continuation position the greedy token is the sim's answer token while the continuation
        still follows that answer, else a pseudo token drawn from the hash of everything before it. The
        greedy token scores ``log 0.99``; any other token ``log 0.01`` minus up to 4, drawn from the hash of
        the prefix and the token, so a continuation equal to the sim's answer always scores highest. Not
        normalized over the vocabulary: the ranking and the greedy flags are what evals read.
        """
        context, continuation = request.context_ids, request.continuation_ids.tolist()
        total = int(context.size) + len(continuation)
        if total > self._manifest.max_context_tokens:
            raise ContextOverflowError(int(context.size), len(continuation), self._manifest.max_context_tokens, _SCORED)
        probe = GenerateRequest(request.request_id, context, max_new_tokens=len(continuation))
        answer, _, _ = self._output(probe)
        inverted = self._manifest.faults.inverted_logprobs
        prefix = hashlib.sha256(np.ascontiguousarray(context, dtype=np.int32).tobytes())
        on_answer = True
        logprobs: list[float] = []
        greedy: list[bool] = []
        for i, tok in enumerate(continuation):
            on_answer = on_answer and i < len(answer)
            digest = prefix.digest()
            best = (
                answer[i]
                if on_answer
                else int(self._pseudo_vocab[int.from_bytes(digest[:8], "little") % self._pseudo_vocab.size])
            )
            is_best = tok == best
            spread = int.from_bytes(
                hashlib.sha256(digest + tok.to_bytes(8, "little", signed=True)).digest()[:8], "little"
            )
            low = _OFF_LOGPROB - 4.0 * spread / 2.0**64
            logprobs.append(
                (low if is_best else _GREEDY_LOGPROB) if inverted else (_GREEDY_LOGPROB if is_best else low)
            )
            greedy.append(is_best)
            on_answer = on_answer and is_best
            prefix.update(tok.to_bytes(4, "little", signed=True))
        return TokenScores(logprobs=logprobs, greedy=greedy)

    # ---- internals --------------------------------------------------------------------------
    def _check(self, req: GenerateRequest) -> None:
        if req.input_ids.size == 0:
            raise InvalidRequestError("input_ids: expected at least one token")
        if req.max_new_tokens <= 0:
            raise InvalidRequestError("max_new_tokens: expected > 0")
        m = self._manifest
        total = int(req.input_ids.size) + req.max_new_tokens
        if total > m.max_context_tokens:
            raise ContextOverflowError(int(req.input_ids.size), req.max_new_tokens, m.max_context_tokens)
        if total > m.effective_context_tokens:
            # A silently capped artifact: the real incident answered 503 "max tokens exceeded",
            # not a clean context refusal, so the sim does the same.
            raise OverloadedError("max tokens exceeded")

    def _load_outputs(self) -> list[np.ndarray]:
        from scenarios.recording import load_recording

        path = RECORDINGS_DIR / f"{self._manifest.precision}.npz"
        if path.is_file():
            rec = load_recording(path)
            if len(rec) == len(self.dataset) and (
                not rec.dataset_sha256 or rec.dataset_sha256 == self.dataset.digest()
            ):
                return [np.asarray(o, dtype=np.int32) for o in rec.outputs]
        self._outputs_are_references = True
        return list(self.dataset.reference_ids)

    def _pseudo_tokens(self, key: bytes, n: int) -> list[int]:
        seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
        rng = np.random.default_rng(seed)
        return [int(x) for x in rng.choice(self._pseudo_vocab, size=n)]

    def _pseudo_output(self, key: bytes) -> list[int]:
        seed = int.from_bytes(hashlib.sha256(b"len" + key).digest()[:8], "little")
        n = int(np.random.default_rng(seed).integers(16, 129))
        return [*self._pseudo_tokens(key, n - 1), self._eos]

    def _other_token(self, tok: int) -> int:
        for cand in self._pseudo_vocab[:2].tolist():
            if cand != tok:
                return int(cand)
        return tok + 1

    async def _scheduler(self) -> None:
        try:
            await self._run_steps()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a scheduler bug must not leave streams waiting forever
            self._failure = f"sim scheduler failed: {type(exc).__name__}: {exc}"
            self._abort_all(self._failure)

    async def _run_steps(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._clock is not None  # bound in start()
        now, sleep = self._clock.now, self._clock.sleep
        timing = self._timing
        step = timing.decode_step_s
        max_batch = self._manifest.max_batch
        t = 0.0
        while not self._stopping:
            if not self._active:
                self._drop_cancelled_waiting()
                if not self._waiting:
                    self._wake = loop.create_future()
                    await self._wake
                    self._wake = None
                    continue
                # Idle -> busy: the step starts when the first waiting request arrived.
                t = max(t, self._waiting[0].arrival)
            # Step boundary: admit FIFO into free slots.
            self._active = [s for s in self._active if not s.cancelled]
            self._drop_cancelled_waiting()
            joiners: list[_Seq] = []
            while self._waiting and len(self._active) < max_batch:
                seq = self._waiting.popleft()
                self._active.append(seq)
                joiners.append(seq)
            if joiners:
                if self._cache is not None:
                    self._admit(joiners)
                prefill = sum(timing.prefill_s(s.n_prompt - s.n_cached) for s in joiners)
                t += prefill
                self._busy_s += prefill
                delay = t - now()
                # Behind schedule (a busy CPU): still yield once, so streams flush while the steps catch up.
                await sleep(delay if delay > 0 else 0)
                for s in joiners:
                    if not s.cancelled:
                        s.emit()
            if any(not s.done and not s.cancelled for s in self._active):
                t += step
                self._busy_s += step
                delay = t - now()
                await sleep(delay if delay > 0 else 0)
                for s in self._active:
                    if not s.done and not s.cancelled:
                        s.emit()
            self._active = [s for s in self._active if not s.done and not s.cancelled]

    def _admit(self, joiners: list[_Seq]) -> None:
        """Each joiner's prompt meets the prefix cache in FIFO order (a joiner sees the blocks of those before it)."""
        assert self._cache is not None
        for s in joiners:
            s.n_cached = s.end.cached_prompt_tokens = self._cache.admit(s.prompt)

    def _drop_cancelled_waiting(self) -> None:
        if any(s.cancelled for s in self._waiting):
            self._waiting = deque(s for s in self._waiting if not s.cancelled)


def analytic_capacity_qps(manifest: ArtifactManifest, dataset: Dataset, max_new_tokens: int | None = None) -> float:
    """Steady-state maximum QPS of the sim's timing model over the dataset's length mix.

    With a full batch ``B`` every step emits ``B`` decode tokens; a sequence of ``L`` output
    tokens holds a slot for ``s = max(1, L - 1)`` steps, so ``B / E[s]`` sequences join per step,
    each adding its prefill to that step: ``qps = B / (E[s] * decode_step_s + B * E[prefill])``.
    Returns ``inf`` for a zero-time artifact.
    """
    timing = manifest.timing or TimingModel()
    b = manifest.max_batch
    steps = []
    prefills = []
    for ids, ref in zip(dataset.input_ids, dataset.reference_ids, strict=True):
        n_out = len(ref) if max_new_tokens is None else min(len(ref), max_new_tokens)
        steps.append(max(1, n_out - 1))
        prefills.append(timing.prefill_s(len(ids)))
    denom = float(np.mean(steps)) * timing.decode_step_s + b * float(np.mean(prefills))
    return float("inf") if denom <= 0 else b / denom
