"""openai backend configuration: presets, environment, missing keys, secrecy, text -> id mapping."""

from __future__ import annotations

import argparse
import random

import pytest

from scenarios import synthetic_dataset
from sut import add_openai_arguments, backends, openai_config_from_args
from sut._openai import OpenAIBackend, OpenAIConfig, OpenAIConfigError, _ByteEncoder
from sut._openai_options import GROQ_BASE_URL

PLANTED_KEY = "sk-PLANTED-0123456789abcdefSECRET"


def _backend(env: dict[str, str], **fields: object) -> OpenAIBackend:
    return OpenAIBackend(OpenAIConfig.model_validate({"kind": "openai", "dataset": "synthetic:8:0", **fields}), env=env)


def test_registry_creates_openai_backend_lazily() -> None:
    assert "openai" in backends.names()
    assert backends.get("openai") is OpenAIBackend


def test_groq_preset_without_key_names_the_env_var() -> None:
    with pytest.raises(OpenAIConfigError) as err:
        _backend({}, preset="groq")
    msg = str(err.value)
    assert "GROQ_API_KEY" in msg and "\n" not in msg


def test_explicit_key_env_without_value_names_the_env_var() -> None:
    with pytest.raises(OpenAIConfigError, match="MY_UPSTREAM_KEY is not set"):
        _backend({}, base_url="http://127.0.0.1:9/v1", api_key_env="MY_UPSTREAM_KEY")


def test_keyless_local_upstream_is_allowed() -> None:
    b = _backend({}, base_url="http://127.0.0.1:9/v1", model="m")
    assert b.manifest.target == "127.0.0.1:9"
    assert "key=none" in repr(b)


def test_missing_base_url_names_flag_and_env() -> None:
    with pytest.raises(OpenAIConfigError, match="LPUPERF_OPENAI_BASE_URL"):
        _backend({})


def test_bad_base_url_is_one_clear_line() -> None:
    with pytest.raises(OpenAIConfigError, match="field 'base_url'"):
        _backend({}, base_url="ftp://example")


def test_environment_fills_url_model_and_key() -> None:
    env = {
        "LPUPERF_OPENAI_BASE_URL": "http://10.0.0.7:8000/v1",
        "LPUPERF_OPENAI_MODEL": "served-model",
        "OPENAI_API_KEY": PLANTED_KEY,
    }
    b = _backend(env)
    m = b.manifest
    assert (m.model, m.precision, m.backend, m.target) == ("served-model", "remote", "openai", "10.0.0.7:8000")
    assert "key=set" in repr(b)


def test_groq_preset_targets_groq_and_keeps_key_secret() -> None:
    cfg = OpenAIConfig(preset="groq", dataset="synthetic:8:0")
    b = OpenAIBackend(cfg, env={"GROQ_API_KEY": PLANTED_KEY})
    m = b.manifest
    assert m.target == "api.groq.com"
    assert m.extra["base_url"] == GROQ_BASE_URL and m.extra["api"] == "chat"
    cfg_with_key = OpenAIConfig(preset="groq", api_key=PLANTED_KEY, dataset="synthetic:8:0")  # type: ignore[arg-type]
    for text in (
        repr(b),
        str(b),
        m.model_dump_json(),
        repr(m),
        cfg_with_key.model_dump_json(),
        repr(cfg_with_key),
        str(cfg_with_key.model_dump()),
    ):
        assert PLANTED_KEY not in text


def test_userinfo_in_base_url_is_not_in_manifest() -> None:
    b = _backend({}, base_url="https://user:hunter2pass@example.org/v1", model="m")
    assert "hunter2pass" not in b.manifest.model_dump_json()
    assert b.manifest.target == "example.org"


def test_upstream_error_bodies_are_scrubbed() -> None:
    b = _backend({"OPENAI_API_KEY": PLANTED_KEY}, base_url="http://127.0.0.1:9/v1", model="m")
    body = f'{{"error": {{"message": "invalid key {PLANTED_KEY}; header Bearer {PLANTED_KEY}"}}}}'
    scrubbed = b._scrub(body)
    assert PLANTED_KEY not in scrubbed
    assert "***" in scrubbed
    # Key-shaped strings the upstream echoes are scrubbed even when they are not our key.
    assert "gsk_abcdefghijklmnop" not in b._scrub("bad key gsk_abcdefghijklmnop")


def test_byte_encoder_inverts_the_dataset_decoder() -> None:
    ds = synthetic_dataset(n=6, seed=3)
    assert ds.decoder is not None
    enc = _ByteEncoder(ds.decoder.pieces)
    for ref in ds.reference_ids:
        body = ref[:-1].tolist()  # EOS has no text
        assert enc.encode(ds.decoder.decode(body)) == body
    assert enc.unmapped_bytes == 0
    assert enc.encode("\u00e9") == [] and enc.unmapped_bytes == 2  # bytes no piece covers are counted


def _longest_match_by_hand(ids: dict[bytes, int], data: bytes) -> tuple[list[int], int]:
    out, unmapped, i = [], 0, 0
    longest = max(map(len, ids))
    while i < len(data):
        for n in range(min(longest, len(data) - i), 0, -1):
            if data[i : i + n] in ids:
                out.append(ids[data[i : i + n]])
                i += n
                break
        else:
            unmapped += 1
            i += 1
    return out, unmapped


@pytest.mark.parametrize("window", [16 * 1024, 7, 1])
def test_byte_encoder_is_greedy_longest_match_on_random_vocabularies(
    window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The trie-shaped regex must pick what trying every length from the longest down picks, including
    # pieces whose prefixes are not pieces ("abc" without "ab") and bytes no piece covers; and working in
    # windows (small ones here, so pieces straddle their ends) must not change a single id.
    monkeypatch.setattr("sut._openai._ENCODE_WINDOW_BYTES", window)
    rng = random.Random(7)
    for _ in range(60):
        alphabet = b"abc d\xc3\xa9"
        pieces = {i: bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 5))) for i in range(rng.randint(1, 40))}
        enc = _ByteEncoder(pieces)
        for _ in range(20):
            text = "".join(rng.choice("abcd e\u00e9x.") for _ in range(rng.randint(0, 60)))
            before = enc.unmapped_bytes
            expected, unmapped = _longest_match_by_hand(enc.ids, text.encode())
            assert enc.encode(text) == expected, (pieces, text)
            assert enc.unmapped_bytes - before == unmapped


def test_byte_encoder_without_pieces_counts_every_byte_unmapped() -> None:
    enc = _ByteEncoder({7: b""})
    assert enc.encode("ab\u00e9") == [] and enc.unmapped_bytes == 4


def test_manifest_records_id_mapping_method() -> None:
    b = _backend({}, base_url="http://127.0.0.1:9/v1", model="m")
    assert b.manifest.extra["ids"].startswith("server (fallback: tokenizer dataset:")
    b2 = _backend({}, base_url="http://127.0.0.1:9/v1", model="m", request_token_ids=False)
    assert b2.manifest.extra["ids"].startswith("tokenizer dataset:")
    b3 = _backend({}, base_url="http://127.0.0.1:9/v1", model="m", request_token_ids=False, tokenizer="none")
    assert b3.manifest.extra["ids"] == "none"


def test_cli_flags_build_a_config() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="")
    parser.add_argument("--model", default="")  # e.g. defined first by another backend: shared, not duplicated
    add_openai_arguments(parser)
    args = parser.parse_args(["--preset", "groq", "--model", "llama", "--api-key-env", "K", "--timeout-s", "3"])
    cfg = OpenAIConfig.model_validate(openai_config_from_args(args))
    assert (cfg.preset, cfg.model, cfg.api_key_env, cfg.timeout_s) == ("groq", "llama", "K", 3.0)
    args = parser.parse_args(["--preset", "quick"])
    assert openai_config_from_args(args)["preset"] == ""


def test_preset_url_beats_ambient_env_but_env_model_beats_preset_default() -> None:
    env = {
        "LPUPERF_OPENAI_BASE_URL": "http://10.0.0.7:8000/v1",
        "LPUPERF_OPENAI_MODEL": "llama-3.3-70b-versatile",
        "GROQ_API_KEY": PLANTED_KEY,
    }
    m = _backend(env, preset="groq").manifest
    assert (m.target, m.model) == ("api.groq.com", "llama-3.3-70b-versatile")
    assert _backend(env, preset="groq", base_url="http://127.0.0.1:9/v1", model="x").manifest.target == "127.0.0.1:9"
