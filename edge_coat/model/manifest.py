"""Model bundle manifests: what a model folder holds, and proof that it still holds exactly that.

A *bundle* is a folder with ``manifest.json`` at its root. The manifest names the model, its base
family, its role (a whole model, a copied base checkpoint, or the small CoAT weights folder that
attaches to one), every file with its sha256 and size, the ONNX parity figures measured when it
was exported, the stored precision and the runtime quantization modes it supports, its license and
where its training data came from.

``verify(dir)`` refuses a folder in which any listed file is missing, truncated (or grown) or
modified, or which holds a file the manifest does not list, and names every such file. Sites copy
these folders onto air-gapped machines by hand; this is how they know the copy is whole.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_coat import __version__
from edge_coat.model.config import Family, Quantization

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1

Role = Literal["model", "base", "coat"]


class BundleError(ValueError):
    """A bundle that cannot be trusted; ``problems`` lists one line per offending file."""

    def __init__(self, directory: Path, problems: list[str]):
        self.directory = Path(directory)
        self.problems = list(problems)
        lines = "\n  ".join(self.problems)
        super().__init__(f"model bundle {self.directory} failed verification:\n  {lines}")


class FileEntry(BaseModel):
    """One file of the bundle, by path relative to the bundle root (POSIX separators)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, description="path relative to the bundle root, '/'-separated, no '..'")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex sha256 of the file's bytes")
    size: int = Field(ge=0, description="file size in bytes")


class ParityCase(BaseModel):
    """One input shape at which the exported graph was compared with torch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["random", "synthetic", "real"] = Field(
        description="random: random embeddings; synthetic: generated audio through the encoder; "
        "real: recorded audio through the encoder"
    )
    batch: int = Field(ge=1, description="batch size B")
    frames: int = Field(ge=1, description="audio frames T (after the encoder)")
    max_abs_diff: float = Field(ge=0.0, description="max |onnx - torch| over the (B, K, D) output")


class ParityRecord(BaseModel):
    """Parity of one exported component against its torch original."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    component: str = Field(description="which part was exported, e.g. 'thinking'")
    file: str = Field(description="the ONNX file in the bundle")
    runtime: str = Field(description="runtime and provider that produced the figures, e.g. 'onnxruntime 1.32 CPU'")
    dtype: str = Field(default="float32", description="precision compared")
    tolerance: float = Field(gt=0.0, description="max abs difference allowed")
    max_abs_diff: float = Field(ge=0.0, description="worst case over all cases")
    cases: list[ParityCase] = Field(min_length=1, description="each compared shape and its difference")


class QuantizationInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stored: Literal["float32", "float16", "bfloat16"] = Field(
        default="float32", description="precision of the weights as stored on disk"
    )
    runtime: list[Quantization] = Field(
        default_factory=lambda: ["fp32", "int8", "nf4"],
        description="load-time modes this bundle supports (nf4 needs CUDA + bitsandbytes)",
    )


class Manifest(BaseModel):
    """Contents of ``manifest.json``."""

    model_config = ConfigDict(extra="forbid")

    format_version: Literal[1] = Field(default=FORMAT_VERSION, description="manifest format version")
    name: str = Field(min_length=1, max_length=200, description="bundle name, e.g. 'coat-tiny'")
    version: str = Field(default="", max_length=100, description="bundle version chosen by whoever built it")
    role: Role = Field(
        description="model: a whole model (base + CoAT); base: a copied base checkpoint; "
        "coat: CoAT weights (thinking block, heads, LoRA) to attach to a base"
    )
    family: Family = Field(description="base model family")
    base_model: str = Field(
        default="", max_length=300, description="the base checkpoint, e.g. 'Qwen/Qwen2-Audio-7B-Instruct'"
    )
    license: str = Field(min_length=1, max_length=300, description="license of the weights in this folder")
    data_provenance: list[str] = Field(
        default_factory=list, description="datasets the weights were trained on, with their licenses"
    )
    quantization: QuantizationInfo = Field(default_factory=QuantizationInfo, description="stored and runtime precision")
    parity: list[ParityRecord] = Field(default_factory=list, description="ONNX-vs-torch figures, one per exported part")
    created: str = Field(default="", description="UTC time the manifest was written (ISO 8601)")
    created_by: str = Field(default="", description="tool and version that wrote it")
    notes: str = Field(default="", max_length=4000, description="free text for operators")
    files: list[FileEntry] = Field(description="every file of the bundle except manifest.json")


# -- hashing and scanning ------------------------------------------------------------------------


def hash_file(path: str | Path) -> tuple[str, int]:
    """(hex sha256, size in bytes) of one file, streamed (a 7B checkpoint is ~15 GB)."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        size = os.fstat(f.fileno()).st_size
    return digest, size


def scan_files(directory: str | Path) -> list[str]:
    """Relative POSIX paths of every regular file below ``directory`` except the manifest, sorted."""
    root = Path(directory)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if rel != MANIFEST_NAME:
                found.append(rel)
    return sorted(found)


def _check_rel_path(rel: str) -> None:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or "\\" in rel:
        raise ValueError(f"manifest file path {rel!r} must be relative to the bundle and stay inside it")


# -- writing -------------------------------------------------------------------------------------


def build_manifest(directory: str | Path, **fields) -> Manifest:
    """Hash every file in ``directory`` and return a manifest with ``fields`` (name, role, family, ...)."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"bundle directory {root} does not exist")
    entries = []
    for rel in scan_files(root):
        digest, size = hash_file(root / rel)
        entries.append(FileEntry(path=rel, sha256=digest, size=size))
    fields.setdefault("created", _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat())
    fields.setdefault("created_by", f"edge-coat {__version__}")
    return Manifest(files=entries, **fields)


def write_manifest(directory: str | Path, manifest: Manifest) -> Path:
    path = Path(directory) / MANIFEST_NAME
    tmp = path.with_name(MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")
    os.replace(tmp, path)  # atomic: a reader never sees half a manifest
    log.info("wrote %s (%d files)", path, len(manifest.files))
    return path


# -- reading and verifying -----------------------------------------------------------------------


def read_manifest(directory: str | Path) -> Manifest:
    """Parse ``manifest.json`` without checking files. Raises BundleError when absent or malformed."""
    root = Path(directory)
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(root, [f"{MANIFEST_NAME}: missing (expected a model bundle folder with a manifest)"])
    try:
        manifest = Manifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise BundleError(root, [f"{MANIFEST_NAME}: not a valid manifest: {exc}"]) from None
    for entry in manifest.files:
        _check_rel_path(entry.path)
    return manifest


def verify(directory: str | Path, *, check_hashes: bool = True) -> Manifest:
    """Check that ``directory`` holds exactly the files its manifest lists, byte for byte.

    Raises ``BundleError`` listing every missing, truncated/grown, modified or unlisted file.
    ``check_hashes=False`` checks presence and sizes only (fast, for listings).
    """
    root = Path(directory)
    manifest = read_manifest(root)
    problems = []
    listed = set()
    for entry in manifest.files:
        listed.add(entry.path)
        path = root / entry.path
        if not path.is_file():
            problems.append(f"{entry.path}: missing")
            continue
        size = path.stat().st_size
        if size != entry.size:
            what = "truncated" if size < entry.size else "grown"
            problems.append(f"{entry.path}: {what}: {size} bytes, manifest says {entry.size}")
            continue
        if check_hashes:
            digest, _ = hash_file(path)
            if digest != entry.sha256:
                problems.append(f"{entry.path}: modified: sha256 {digest[:16]}..., manifest says {entry.sha256[:16]}...")
    for rel in scan_files(root):
        if rel not in listed:
            problems.append(f"{rel}: not listed in {MANIFEST_NAME} (remove it, or rebuild the manifest)")
    if problems:
        raise BundleError(root, problems)
    log.info("verified bundle %s (%s, %d files%s)", root, manifest.name, len(manifest.files),
             "" if check_hashes else ", sizes only")
    return manifest


class BundleListing(BaseModel):
    """One row of ``list_bundles``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    name: str = ""
    role: str = ""
    family: str = ""
    size_bytes: int = 0
    files: int = 0
    ok: bool = False
    problem: str = ""


def list_bundles(root: str | Path, *, check_hashes: bool = False, max_depth: int = 3) -> list[BundleListing]:
    """Every folder below ``root`` (itself included, at most ``max_depth`` levels down) with a manifest."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"model root {root} does not exist")
    rows = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames.sort()
        if MANIFEST_NAME in filenames:
            dirnames[:] = []  # a bundle's own subfolders are part of it
            rows.append(_listing(Path(dirpath), check_hashes))
        elif depth >= max_depth:
            dirnames[:] = []
    return rows


def _listing(directory: Path, check_hashes: bool) -> BundleListing:
    try:
        m = verify(directory, check_hashes=check_hashes)
    except BundleError as exc:
        try:
            m = read_manifest(directory)
        except BundleError:
            return BundleListing(path=directory, problem="; ".join(exc.problems))
        return BundleListing(path=directory, name=m.name, role=m.role, family=m.family,
                             size_bytes=sum(f.size for f in m.files), files=len(m.files),
                             problem="; ".join(exc.problems))
    return BundleListing(path=directory, name=m.name, role=m.role, family=m.family,
                         size_bytes=sum(f.size for f in m.files), files=len(m.files), ok=True)
