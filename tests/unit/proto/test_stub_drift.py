"""The committed Python stubs must be exactly what protoc makes of proto/inference.proto."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROTO = Path("proto") / "inference.proto"
STUBS = ("inference_pb2.py", "inference_pb2_grpc.py", "inference_pb2.pyi")


def _generate(root: Path, out: Path) -> dict[str, bytes]:
    """Run protoc the way ``make proto`` does (paths relative to ``root``); return the stubs' bytes."""
    from grpc_tools import protoc

    out.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{root}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--pyi_out={out}",
        str(root / PROTO),
    ]
    rc = protoc.main(args)
    assert rc == 0, f"protoc failed with status {rc}"
    return {name: (out / "proto" / name).read_bytes() for name in STUBS}


def _drift(generated: dict[str, bytes], committed_dir: Path) -> list[str]:
    return [name for name in STUBS if generated[name] != (committed_dir / name).read_bytes()]


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    generated = _generate(ROOT, tmp_path / "gen")
    drifted = _drift(generated, ROOT / "proto")
    assert drifted == [], f"stubs drifted from {PROTO}: {drifted}; run `make proto` and commit the result"


def test_an_edited_proto_is_detected_as_drift(tmp_path: Path) -> None:
    # Planted fault: a field added to the .proto without regenerating the stubs.
    fake_root = tmp_path / "root"
    (fake_root / "proto").mkdir(parents=True)
    text = (ROOT / PROTO).read_text(encoding="utf-8")
    marker = "message GetArtifactRequest {}"
    assert marker in text
    (fake_root / PROTO).write_text(
        text.replace(marker, "message GetArtifactRequest {\n  bool verbose = 1;\n}"), encoding="utf-8"
    )
    generated = _generate(fake_root, tmp_path / "gen")
    drifted = _drift(generated, ROOT / "proto")
    assert "inference_pb2.py" in drifted and "inference_pb2.pyi" in drifted
