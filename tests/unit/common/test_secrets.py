"""Secrets: read from files or the environment with one-line errors that never show the content, refused
on the command line without being echoed, scrubbed in any letter case; URLs lose userinfo, keep host:port."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from common import UsageError, read_secret, read_secret_file, refuse_secret_flag, scrub, scrub_url, secret_file_arg

SECRET = "tok-Planted-7f3a9c21d4e8b6"


def test_secret_file_is_read_and_stripped(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text(f"  {SECRET}\n", encoding="utf-8")
    assert read_secret_file(f, "--token-file") == SECRET


@pytest.mark.parametrize(
    ("content", "expected"),
    [("", "the file is empty"), (f"{SECRET}\nsecond line\n", "expected one line"), (None, "file not found")],
)
def test_bad_secret_files_are_one_line_without_content(tmp_path: Path, content: str | None, expected: str) -> None:
    f = tmp_path / "token"
    if content is not None:
        f.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError) as err:
        read_secret_file(f, "--token-file")
    msg = str(err.value)
    assert msg.startswith(f"--token-file: {f}: ") and expected in msg and "\n" not in msg
    assert SECRET not in msg


def test_secret_from_environment_only_when_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LPUPERF_TEST_TOKEN", SECRET)
    assert read_secret(None, "LPUPERF_TEST_TOKEN", "--token-file") == SECRET
    f = tmp_path / "t"
    f.write_text("from-file-token\n", encoding="utf-8")
    assert read_secret(f, "LPUPERF_TEST_TOKEN", "--token-file") == "from-file-token"
    monkeypatch.delenv("LPUPERF_TEST_TOKEN")
    assert read_secret(None, "LPUPERF_TEST_TOKEN", "--token-file") is None


def test_a_token_as_flag_value_is_refused_and_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as err:
        secret_file_arg(SECRET)
    assert SECRET not in str(err.value) and "not a file" in str(err.value)
    with pytest.raises(argparse.ArgumentTypeError) as err2:
        refuse_secret_flag(SECRET)
    assert SECRET not in str(err2.value)
    f = tmp_path / "token"
    f.write_text(SECRET, encoding="utf-8")
    assert secret_file_arg(str(f)) == f


def test_scrub_is_case_insensitive_and_catches_bearer_and_key_shapes() -> None:
    body = f"upstream said: key {SECRET.upper()} / {SECRET.lower()} / {SECRET} Authorization: Bearer abc.def"
    out = scrub(body, [SECRET])
    for form in (SECRET, SECRET.upper(), SECRET.lower(), "abc.def"):
        assert form not in out
    assert out.count("***") == 4
    assert "gsk_abcdefghijklmnop" not in scrub("bad key gsk_abcdefghijklmnop")
    # A planted fault: without the secret in the list an upper-cased copy of a non key-shaped secret survives.
    assert "HUNTER2-PASSWORD" in scrub("echo HUNTER2-PASSWORD", [])
    assert "HUNTER2-PASSWORD" not in scrub("echo HUNTER2-PASSWORD", ["hunter2-password"])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pa55@api.example:8443/v1", "https://api.example:8443/v1"),
        ("http://key@[::1]:9000/v1?x=1", "http://[::1]:9000/v1?x=1"),
        ("https://api.example/v1", "https://api.example/v1"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ],
)
def test_scrub_url_drops_userinfo_and_keeps_host_and_port(url: str, expected: str) -> None:
    assert scrub_url(url) == expected


# --- bearer tokens: only what a request header carries ----------------------------------------------


@pytest.mark.parametrize(
    ("token", "kind"),
    [
        ("t\u00f6ken-12345", "a non-ASCII character"),
        ("tok\u200ben-12345", "a non-ASCII character"),  # zero-width space: invisible in an editor
        ("tok\ten-12345", "a control character"),
        ("tok\x7fen-12345", "a control character"),
        ("tok en-12345", "whitespace inside"),
    ],
)
def test_a_token_a_header_cannot_carry_is_refused_naming_file_or_variable(
    token: str, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from common._secrets import token_problem

    f = tmp_path / "token"
    f.write_text(token + "\n", encoding="utf-8")
    with pytest.raises(UsageError) as err:
        read_secret(f, None, "--token-file", bearer_token=True)
    assert str(err.value).startswith(f"--token-file: {f}: the token holds {kind}")
    monkeypatch.setenv("LPUPERF_TEST_TOKEN", token)
    with pytest.raises(UsageError) as err_env:
        read_secret(None, "LPUPERF_TEST_TOKEN", "--token-file", bearer_token=True)
    assert "environment variable LPUPERF_TEST_TOKEN: the token holds" in str(err_env.value)
    for msg in (str(err.value), str(err_env.value)):
        assert token not in msg and "printable ASCII" in msg and "\n" not in msg
    assert token_problem(token) is not None
    # Not a bearer token (a basic-auth pair is base64-encoded, a password may hold anything): read as before.
    assert read_secret_file(f, "--metrics-basic-auth-file") == token


def test_every_printable_ascii_character_is_a_valid_token_character() -> None:
    from common._secrets import token_problem

    assert token_problem("".join(chr(c) for c in range(0x21, 0x7F))) is None
    assert token_problem(SECRET) is None
