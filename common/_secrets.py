"""Secrets (bearer tokens, API keys, passwords): read from files or the environment, never from argv,
and scrubbed from any text that may reach a log, a result file or an error line.

A bearer token travels as an HTTP/2 or HTTP/1 header value (gRPC metadata, the metrics endpoint's
``Authorization``), which carries printable ASCII only: read with ``bearer_token=True``, a token with
anything else (non-ASCII, control characters, whitespace inside) is refused when it is read, naming
the file or variable, instead of failing later on the wire as "Illegal metadata".

A value on the command line is readable by every user of the machine (``ps``, ``/proc/PID/cmdline``),
so flags take a *file* that holds the secret; :func:`secret_file_arg` refuses a flag value that is
not a file without ever echoing it. :func:`scrub` replaces every occurrence of a secret, whatever
its case (an upstream that upper-cases a key it echoes back must not leak it), and any
``Bearer <token>``; :func:`scrub_url` drops the userinfo of a URL and keeps host and port.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from common._errors import UsageError

MAX_SECRET_BYTES = 16 * 1024
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")
_BASIC = re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]{4,}")
# Shapes of provider keys (OpenAI sk-, Groq gsk_, xAI xai-, generic api-): scrubbed even when not ours.
_KEY_LIKE = re.compile(r"(?i)\b(sk|gsk|xai|api)[-_][A-Za-z0-9_\-]{8,}")
REDACTED = "***"
TOKEN_CHARACTERS = "printable ASCII without spaces (letters, digits and punctuation)"


def read_secret_file(path: str | Path, what: str, *, bearer_token: bool = False) -> str:
    """The secret in ``path`` (surrounding whitespace removed); UsageError naming ``what`` and the file.

    The message names the file and what was wrong with it, never the content. ``bearer_token``: the
    value must also be one a header can carry (:func:`token_problem`).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise UsageError(f"{what}: {p}: expected a file holding the secret")
        if size > MAX_SECRET_BYTES:
            raise UsageError(f"{what}: {p}: {size} bytes; expected a secret of at most {MAX_SECRET_BYTES} bytes")
        raw = p.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{what}: {p}: file not found") from None
    except PermissionError:
        raise UsageError(f"{what}: {p}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"{what}: {p}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UsageError(f"{what}: {p}: expected UTF-8 text") from None
    if not value:
        raise UsageError(f"{what}: {p}: the file is empty")
    if any(c in value for c in "\r\n\0"):
        raise UsageError(f"{what}: {p}: expected one line")
    problem = token_problem(value) if bearer_token else None
    if problem is not None:
        raise UsageError(f"{what}: {p}: {problem}")
    return value


def read_secret(file: str | Path | None, env: str | None, what: str, *, bearer_token: bool = False) -> str | None:
    """The secret from ``file`` if given, else from the environment variable ``env``; None if neither is set."""
    if file is not None:
        return read_secret_file(file, what, bearer_token=bearer_token)
    if env:
        value = os.environ.get(env, "").strip()
        if value:
            if any(c in value for c in "\r\n\0"):
                raise UsageError(f"{what}: environment variable {env}: expected one line")
            problem = token_problem(value) if bearer_token else None
            if problem is not None:
                raise UsageError(f"{what}: environment variable {env}: {problem}")
            return value
    return None


def token_problem(value: str) -> str | None:
    """Why ``value`` cannot travel as a bearer token in a header (None: it can). Never quotes the value."""
    for kind, bad in (
        ("a non-ASCII character", lambda c: ord(c) > 0x7F),
        ("a control character", lambda c: ord(c) < 0x20 or ord(c) == 0x7F),
        ("whitespace inside", lambda c: c == " "),
    ):
        if any(bad(c) for c in value):
            return f"the token holds {kind}; a token travels in a request header: expected {TOKEN_CHARACTERS}"
    return None


def secret_file_arg(text: str) -> Path:
    """argparse ``type=`` for a flag naming a secret's file: a value that is no file is refused unseen.

    A user who pastes the token itself gets told to put it in a file; the value is not repeated, since
    it may be the secret (it is already in this process's argv, but need not also be in a log).
    """
    p = Path(text)
    if not p.is_file():
        raise argparse.ArgumentTypeError(
            "expected a file holding the secret; the value given is not a file (not shown: a secret on the "
            "command line is visible to every user in ps, so put it in a file or the environment variable)"
        )
    return p


def refuse_secret_flag(text: str) -> str:
    """argparse ``type=`` for a flag that would take a secret itself: always refused, value never shown."""
    raise argparse.ArgumentTypeError(
        "a secret on the command line is visible to every user in ps; put it in a file and pass its path "
        "with the matching --*-file flag, or use the environment variable"
    )


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with each secret (matched case-insensitively), bearer/basic credentials and key-shaped
    strings replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = re.sub(re.escape(secret), REDACTED, text, flags=re.IGNORECASE)
    text = _BEARER.sub(rf"\g<1>{REDACTED}", text)
    text = _BASIC.sub(rf"\g<1>{REDACTED}", text)
    return _KEY_LIKE.sub(REDACTED, text)


def scrub_url(url: str) -> str:
    """``url`` without its userinfo (``user:secret@``); scheme, host, port, path and query are kept."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a malformed port raises here: fall through to the plain cut below
    except ValueError:
        scheme, sep, rest = url.partition("://")
        if sep and "@" in rest.split("/", 1)[0]:
            netloc, slash, tail = rest.partition("/")
            return f"{scheme}://{netloc.rsplit('@', 1)[1]}{slash}{tail}"
        return url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
