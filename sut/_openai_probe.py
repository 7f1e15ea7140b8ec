"""The openai backend's check of its endpoint at start: one line naming why it cannot serve.

Without it a relay (``--backend openai``) or a direct run (``--transport openai-http``) at a dead port
started anyway and ran its whole duration with every query failing UNAVAILABLE, the cause in no
message. :func:`probe_endpoint` asks ``GET /models`` once, before anything is served, and refuses:

* a transport failure, named: connection refused, a name that does not resolve, a connect timeout, a
  certificate that does not verify (unknown CA, wrong name, expired), another TLS failure;
* a refused API key (401/403), saying which variable holds it (or that none was set);
* a model the endpoint does not serve. A model missing from the list is confirmed by one request of one
  token, since some servers (TGI) list one name and answer to any; 404 there (OpenAI's and vLLM's
  answer for an unknown model) is refused. So is a server with no model list when that request says 404.

A 429 at start says the endpoint is up and rate limited: the run goes on (its queries count the 429s).
"""

from __future__ import annotations

import errno
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from common import RegistryError

if TYPE_CHECKING:
    import aiohttp
    import yarl

_LISTED = 8  # model names quoted in a refusal


class EndpointProbeError(RegistryError):
    """The endpoint cannot serve this backend (unreachable, TLS, key refused, unknown model): one line."""


@dataclass(frozen=True)
class ProbeTarget:
    """What the probe needs to know about the endpoint; ``base_url`` already without credentials."""

    base_url: str
    host: str
    hostname: str
    api: str  # "completions" | "chat"
    model: str  # "" = take the first listed
    key_env: str
    has_key: bool
    ca_bundle: str
    connect_timeout_s: float

    @classmethod
    def of(cls, resolved: Any, base_url: str, connect_timeout_s: float) -> ProbeTarget:
        """From the backend's resolved config (sut._openai._Resolved: URL parts, model, key and its variable)."""
        key = resolved.api_key
        return cls(
            base_url=base_url,
            host=resolved.host,
            hostname=resolved.hostname,
            api=resolved.api,
            model=resolved.model,
            key_env=resolved.key_env,
            has_key=key is not None and bool(key.get_secret_value()),
            ca_bundle=resolved.ca_bundle,
            connect_timeout_s=connect_timeout_s,
        )


async def probe_endpoint(
    client: aiohttp.ClientSession,
    urls: dict[str, yarl.URL],
    target: ProbeTarget,
    scrub: Callable[[str], str],
) -> str:
    """The model to relay to (the configured one, else the first listed); EndpointProbeError otherwise."""
    where = f"openai backend: {target.base_url}"
    status, text = await _request(client, "GET", urls["/models"], None, target, scrub)
    if status in (401, 403):
        raise EndpointProbeError(f"{where}: {_key_refused(status, text, target, scrub)}")
    if status == 429 and target.model:
        return target.model  # up and rate limited: the queries will say so
    listed: list[str] | None = None
    if status == 200:
        listed = _model_ids(text)
    elif status not in (404, 405):
        raise EndpointProbeError(f"{where}: GET /models answered HTTP {status}: {error_message(text, scrub)}")
    if not target.model:
        if not listed:
            why = "lists no models" if listed is not None else f"has no model list (GET /models: HTTP {status})"
            raise EndpointProbeError(f"{where}: field 'model': none given and the endpoint {why}; pass --model")
        return listed[0]
    if listed is not None and target.model in listed:
        return target.model
    await _confirm_model(client, urls, target, listed, scrub)
    return target.model


async def _confirm_model(
    client: aiohttp.ClientSession,
    urls: dict[str, yarl.URL],
    target: ProbeTarget,
    listed: list[str] | None,
    scrub: Callable[[str], str],
) -> None:
    """One request of one token for a model the list does not name; 404 (or a 400 about the model) refuses it."""
    body: dict[str, Any] = {"model": target.model, "max_tokens": 1, "stream": False}
    if target.api == "chat":
        path = "/chat/completions"
        body["messages"] = [{"role": "user", "content": "Hi"}]
    else:
        path = "/completions"
        body["prompt"] = "Hi"
    status, text = await _request(client, "POST", urls[path], body, target, scrub)
    message = error_message(text, scrub)
    if status in (401, 403):
        raise EndpointProbeError(f"openai backend: {target.base_url}: {_key_refused(status, text, target, scrub)}")
    unknown = status == 404 or (status in (400, 422) and "model" in message.lower())
    if not unknown:
        return
    names = ", ".join(listed[:_LISTED]) + (" ..." if len(listed) > _LISTED else "") if listed else ""
    offered = f"; it lists: {names}" if names else ""
    raise EndpointProbeError(
        f"openai backend: field 'model': '{target.model}' is not served by {target.host} "
        f"(POST {path}: HTTP {status}: {message}){offered}"
    )


async def _request(
    client: aiohttp.ClientSession,
    method: str,
    url: yarl.URL,
    body: dict[str, Any] | None,
    target: ProbeTarget,
    scrub: Callable[[str], str],
) -> tuple[int, str]:
    import aiohttp

    data = None if body is None else json.dumps(body).encode()
    try:
        async with client.request(method, url, data=data) as resp:
            return resp.status, await resp.text(errors="replace")
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise EndpointProbeError(
            f"openai backend: cannot reach {target.base_url}: {describe_unreachable(exc, target, scrub)}"
        ) from None


def describe_unreachable(exc: BaseException, target: ProbeTarget, scrub: Callable[[str], str]) -> str:
    """Why a connection to the endpoint failed, in words (never the key; errors are scrubbed)."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        reason = str(getattr(cert_error, "verify_message", "") or getattr(cert_error, "reason", "") or cert_error)
        where = f"--ca-bundle {target.ca_bundle}" if target.ca_bundle else "the system trust store"
        hint = "" if target.ca_bundle else "; pass --ca-bundle with the CA that signed it"
        return f"TLS: {target.host}'s certificate does not verify against {where} ({reason}){hint}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError | ssl.SSLError):
        why = getattr(exc, "reason", None) or getattr(getattr(exc, "os_error", None), "reason", None)
        return f"TLS handshake with {target.host} failed ({why or scrub(str(exc))}); does it serve https?"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve '{target.hostname}'"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"no connection within the {target.connect_timeout_s:g} s connect timeout"
    if isinstance(exc, TimeoutError):  # connected; the answer did not come within the read timeout
        return f"{target.host} accepted the connection but sent no HTTP answer in time (read timeout)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if exc.os_error.errno == errno.ECONNREFUSED:
            return f"connection refused (nothing listens on {target.host})"
        return f"cannot connect to {target.host} ({exc.os_error.strerror or exc.os_error.__class__.__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return f"{target.host} closed the connection without an HTTP answer (an https endpoint given as http?)"
    return scrub(f"{exc.__class__.__name__}: {exc}")


def _key_refused(status: int, text: str, target: ProbeTarget, scrub: Callable[[str], str]) -> str:
    message = error_message(text, scrub)
    if not target.has_key:
        return (
            f"the endpoint requires an API key (HTTP {status}: {message}); set {target.key_env} or name the "
            "variable holding it with --api-key-env"
        )
    return f"the endpoint refused the API key in {target.key_env} (HTTP {status}: {message})"


def _model_ids(text: str) -> list[str]:
    """The ids of an OpenAI ``GET /models`` answer ({"data": [{"id": ...}, ...]}); [] when it has none."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return []
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return []
    return [str(e["id"]) for e in entries if isinstance(e, dict) and e.get("id") is not None]


def error_message(text: str, scrub: Callable[[str], str]) -> str:
    """``error.message`` of an OpenAI-style error body (or FastAPI's ``detail``), else the body itself, scrubbed.

    Also the relay's message for a failed query (sut/_openai.py).
    """
    message = text
    try:
        obj = json.loads(text)
        err = obj.get("error") if isinstance(obj, dict) else None
        if isinstance(err, dict) and err.get("message"):
            message = str(err["message"])
        elif isinstance(err, str):
            message = err
        elif isinstance(obj, dict) and isinstance(obj.get("detail"), str):
            message = obj["detail"]
    except json.JSONDecodeError:
        pass
    return scrub(message) or "(empty body)"
