"""Model version manifests: what a trained adapter is, and exactly which rows, from whom, trained it.

``lineage_manifest.json`` sits in the model directory beside the peft adapter and the tokenizer::

    {"format": ..., "model_version_id": "<sha256>", "content": {...}, "run_info": {...}}

``content`` (base model + config hash, dataset versions, per-epoch ordered row ids, contributor per
row, hyper-parameters, metrics, library and engine-code versions, and the SHA-256 of every other file
in the directory) is hashed as canonical JSON; that hash is the model version id. ``run_info``
(timings, device, resume point, local paths) describes one execution and is deliberately outside
the hash, so two identical trainings get the same id and a re-run on a faster machine is not a new
model.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .spec import canonical_json

MANIFEST_NAME = "lineage_manifest.json"
MANIFEST_FORMAT = "lineage.training-manifest/1"
# Fixed timestamp for zip entries so an export of the same model is byte-identical.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def directory_file_hashes(model_dir: Path) -> dict[str, str]:
    """SHA-256 of every file under ``model_dir`` except the manifest, keyed by relative POSIX path."""
    return {
        path.relative_to(model_dir).as_posix(): sha256_file(path)
        for path in sorted(model_dir.rglob("*"))
        if path.is_file() and path.name != MANIFEST_NAME
    }


def engine_code_version() -> str:
    """SHA-256 over this package's source files: the training code that produced a model version.

    Hashing the engine's own sources (rather than a git commit) keeps the id stable across commits
    that do not touch training and works in deployments without a .git directory.
    """
    digest = hashlib.sha256()
    package_dir = Path(__file__).resolve().parent
    for path in sorted(package_dir.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import peft
    import tokenizers
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "tokenizers": tokenizers.__version__,
    }


def model_version_id(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(content)).hexdigest()


def write_manifest(model_dir: Path, content: dict[str, Any], run_info: dict[str, Any]) -> dict[str, Any]:
    """Add the directory's file hashes to ``content``, hash it, and write the manifest; returns it."""
    content = {**content, "files": directory_file_hashes(model_dir)}
    manifest = {
        "format": MANIFEST_FORMAT,
        "model_version_id": model_version_id(content),
        "content": content,
        "run_info": run_info,
    }
    (model_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False))
    return manifest


def read_manifest(model_dir: Path) -> dict[str, Any]:
    return json.loads((Path(model_dir) / MANIFEST_NAME).read_text())


@dataclass(frozen=True)
class VerificationReport:
    """Outcome of ``verify_model_version``; ``ok`` only when files and content hash both match."""

    ok: bool
    recorded_id: str
    computed_id: str
    changed_files: tuple[str, ...]
    missing_files: tuple[str, ...]
    extra_files: tuple[str, ...]


def verify_model_version(model_dir: Path | str) -> VerificationReport:
    """Recompute every file hash and the content hash of a model directory against its manifest."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    recorded_files: dict[str, str] = manifest["content"]["files"]
    actual_files = directory_file_hashes(model_dir)
    changed = tuple(
        sorted(n for n in recorded_files if n in actual_files and actual_files[n] != recorded_files[n])
    )
    missing = tuple(sorted(set(recorded_files) - set(actual_files)))
    extra = tuple(sorted(set(actual_files) - set(recorded_files)))
    computed = model_version_id({**manifest["content"], "files": actual_files})
    return VerificationReport(
        ok=computed == manifest["model_version_id"] and not (changed or missing or extra),
        recorded_id=manifest["model_version_id"],
        computed_id=computed,
        changed_files=changed,
        missing_files=missing,
        extra_files=extra,
    )


def export_adapter_zip(model_dir: Path | str) -> bytes:
    """The model directory (adapter, tokenizer, manifest) as a zip, byte-identical for the same model.

    Extracted, it loads with ``PeftModel.from_pretrained(base_model, extracted_dir)``.
    """
    model_dir = Path(model_dir)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(model_dir).as_posix(), date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()
