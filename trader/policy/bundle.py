"""The policy bundle: weights as plain float32 arrays, normalisation statistics and manifest.json.

Files: ``weights.bin`` (every layer's weight then bias, float32 little-endian, in manifest order),
``normalisation.json`` (mean and std of each feature over the training window) and ``manifest.json``
(feature schema and order, action map, layers, library versions, training window and data hash,
metrics, ``files``: name -> sha256, and golden inputs with the actions they must give). Nothing is
ever unpickled: loading reads bytes and JSON only, and refuses a bundle that fails any check.

The manifest is signed: ``fields`` holds a digest of each of its fields, and ``policy_version`` is the
digest of the canonical manifest (sorted keys, no spaces) without itself, which covers ``fields`` and
the files' sha256s, so every byte of the bundle. An edit is refused naming the field or file; a
consistent re-signing still meets the content checks: feature names are a selection of the pinned
feature schema (``contracts.feature_schema``) in its order, every action is within the risk gate's
target limit, the golden set has the writer's GOLDEN_CASES, the weights are finite, and the directory
holds the listed files and nothing else (no extra file, no link, no subdirectory).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contracts.feature_schema import names_problem
from trader.policy.runtime import Layer, PolicyRuntime
from trader.risk import MAX_TARGET_POSITION

MANIFEST = "manifest.json"
WEIGHTS = "weights.bin"
NORMALISATION = "normalisation.json"
FORMAT = 2  # 2: signed manifest (fields, policy_version over the canonical manifest)
GOLDEN_CASES = 16  # golden inputs the writer records; a bundle with fewer is refused
UNSIGNED = ("policy_version", "fields")  # what the field digests do not cover


class BundleError(ValueError):
    """The bundle cannot be trusted; the message says which check failed."""


@dataclass
class Bundle:
    path: Path
    manifest: dict[str, Any]
    runtime: PolicyRuntime

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.manifest["feature_names"])

    @property
    def feature_schema(self) -> str:
        return str(self.manifest["feature_schema"])

    @property
    def version(self) -> str:
        return str(self.manifest["policy_version"])

    @property
    def algo(self) -> str:
        return str(self.manifest["algo"])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sign(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with its field digests and ``policy_version`` computed afresh."""
    body = {k: v for k, v in manifest.items() if k not in UNSIGNED}
    signed = {**body, "fields": {k: sha256(_canonical(v))[:16] for k, v in body.items()}}
    return {**signed, "policy_version": sha256(_canonical(signed))[:16]}


def write(out: Path, layers: list[Layer], mean: np.ndarray, std: np.ndarray, manifest: dict[str, Any],
          golden_inputs: list[tuple[list[float], float]]) -> Bundle:
    """Write the bundle into ``out`` (created) and return it loaded and verified."""
    out.mkdir(parents=True, exist_ok=True)
    blob = b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for lay in layers for a in (lay.weight, lay.bias))
    norm = _dumps({"mean": [float(x) for x in mean], "std": [float(x) for x in std]})
    if len(golden_inputs) < GOLDEN_CASES:
        raise BundleError(f"{len(golden_inputs)} golden inputs given; a bundle records {GOLDEN_CASES}")
    (out / WEIGHTS).write_bytes(blob)
    (out / NORMALISATION).write_bytes(norm)
    runtime = PolicyRuntime(layers, mean, std, tuple(manifest["action_map"]))
    golden = [{"features": f, "position": p, "action": runtime.act(np.asarray(f), p),
               "scores": [float(x) for x in runtime.scores(np.asarray(f), p)]} for f, p in golden_inputs]
    full = dict(manifest)
    full.update({
        "format": FORMAT,
        "layers": [{"weight": list(lay.weight.shape), "bias": list(lay.bias.shape), "activation": lay.activation}
                   for lay in layers],
        "golden": golden,
        "files": {WEIGHTS: sha256(blob), NORMALISATION: sha256(norm)},
    })
    (out / MANIFEST).write_bytes(_dumps(sign(full)))
    return load(out)


def load(path: Path, expected_schema: str | None = None) -> Bundle:
    """Read and verify a bundle: files, signature, schema, limits and golden outputs. Raises BundleError."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise BundleError(f"{path} has no {MANIFEST}: not a policy bundle") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{path / MANIFEST} is not valid JSON: {err}") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path / MANIFEST} is not a JSON object")
    for key in ("format", "files", "feature_schema", "feature_names", "action_map", "layers", "golden", "algo",
                "fields", "policy_version"):
        if key not in manifest:
            raise BundleError(f"{path / MANIFEST} lacks {key!r}")
    if manifest["format"] != FORMAT:
        raise BundleError(f"bundle format {manifest['format']} is not the supported format {FORMAT} "
                          "(re-export the bundle with this tickflow)")
    contents = _files(path, manifest["files"])
    _verify_signature(manifest)
    if expected_schema is not None and manifest["feature_schema"] != expected_schema:
        raise BundleError(f"the bundle was trained on feature schema {manifest['feature_schema']!r}, "
                          f"this deployment serves {expected_schema!r}")
    problem = names_problem(str(manifest["feature_schema"]), list(manifest["feature_names"]))
    if problem or not manifest["feature_names"]:
        raise BundleError(f"feature_names: {problem or 'empty'}")
    actions = manifest["action_map"]
    if (not actions or not all(isinstance(a, int | float) and math.isfinite(a) for a in actions)
            or max(abs(a) for a in actions) > MAX_TARGET_POSITION or len(set(actions)) != len(actions)):
        raise BundleError(f"action_map {actions} is outside the risk gate's limit: distinct finite targets within "
                          f"+-{MAX_TARGET_POSITION:g} (units of TRADER__NOTIONAL)")
    if len(manifest["golden"]) < GOLDEN_CASES:
        raise BundleError(f"golden: {len(manifest['golden'])} golden cases, the writer records {GOLDEN_CASES}")
    runtime = _runtime(manifest, contents)
    for i, case in enumerate(manifest["golden"]):
        got = runtime.act(np.asarray(case["features"], np.float64), float(case["position"]))
        scores = runtime.scores(np.asarray(case["features"], np.float64), float(case["position"]))
        if got != case["action"] or not np.allclose(scores, case["scores"], rtol=1e-4, atol=1e-5):
            raise BundleError(f"golden case {i}: the policy gives action {got}, the manifest expects "
                              f"{case['action']} (scores differ by {np.max(np.abs(scores - case['scores'])):.3g})")
    return Bundle(path, manifest, runtime)


def _files(path: Path, listed: Any) -> dict[str, bytes]:
    """The listed files' bytes, checked: plain regular files, checksums, and nothing else in the directory."""
    if not isinstance(listed, dict) or set(listed) != {WEIGHTS, NORMALISATION}:
        raise BundleError(f"files: the manifest lists {sorted(listed) if isinstance(listed, dict) else listed}, "
                          f"expected {WEIGHTS} and {NORMALISATION}")
    for entry in sorted(path.iterdir()):
        if entry.is_symlink():
            raise BundleError(f"{entry.name} is a link (to {os.readlink(entry)}); a bundle holds plain files only")
        if entry.name != MANIFEST and entry.name not in listed:
            raise BundleError(f"{entry.name} is not listed in the manifest's files; a bundle holds "
                              f"{MANIFEST}, {WEIGHTS} and {NORMALISATION} only")
        if not entry.is_file():
            raise BundleError(f"{entry.name} is not a regular file")
    contents: dict[str, bytes] = {}
    for name, digest in listed.items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{file} is listed in the manifest but missing")
        data = file.read_bytes()
        if sha256(data) != digest:
            raise BundleError(f"checksum mismatch for {name}: the manifest says {str(digest)[:16]}..., "
                              f"the file hashes to {sha256(data)[:16]}... (the file was changed or corrupted)")
        contents[name] = data
    return contents


def _verify_signature(manifest: dict[str, Any]) -> None:
    """Name the field that changed since the bundle was written, or refuse a policy_version that does not fit."""
    expected = sign(manifest)
    recorded = manifest["fields"]
    if not isinstance(recorded, dict):
        raise BundleError("fields: the manifest's field digests are not an object")
    for name in sorted(set(recorded) | set(expected["fields"])):
        if name not in recorded:
            raise BundleError(f"manifest field {name!r} was added after the bundle was written")
        if name not in expected["fields"]:
            raise BundleError(f"manifest field {name!r} was removed after the bundle was written")
        if recorded[name] != expected["fields"][name]:
            raise BundleError(f"manifest field {name!r} was changed after the bundle was written "
                              f"(its digest is {expected['fields'][name]}, the manifest records {recorded[name]})")
    if manifest["policy_version"] != expected["policy_version"]:
        raise BundleError(f"policy_version {manifest['policy_version']!r} is not the digest of the manifest "
                          f"({expected['policy_version']!r}): the manifest was changed after it was written")


def _runtime(manifest: dict[str, Any], contents: dict[str, bytes]) -> PolicyRuntime:
    blob = contents[WEIGHTS]
    layers: list[Layer] = []
    offset = 0
    try:
        for spec in manifest["layers"]:
            arrays = []
            for shape in (spec["weight"], spec["bias"]):
                count = int(np.prod(shape))
                if offset + 4 * count > len(blob):
                    raise BundleError(f"{WEIGHTS} is shorter than the manifest's layers describe")
                arrays.append(np.frombuffer(blob, "<f4", count, offset).reshape(shape).astype(np.float32))
                offset += 4 * count
            layers.append(Layer(arrays[0], arrays[1], str(spec["activation"])))
        if offset != len(blob):
            raise BundleError(f"{WEIGHTS} has {len(blob) - offset} bytes more than the layers describe")
        norm = json.loads(contents[NORMALISATION])
        for name, values in (("weights", [lay.weight for lay in layers] + [lay.bias for lay in layers]),
                             ("normalisation", [np.asarray(norm["mean"], np.float64),
                                                np.asarray(norm["std"], np.float64)])):
            if not all(np.isfinite(v).all() for v in values):
                raise BundleError(f"the bundle's {name} hold NaN or infinite values")
        return PolicyRuntime(layers, np.asarray(norm["mean"]), np.asarray(norm["std"]),
                             tuple(float(a) for a in manifest["action_map"]))
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, BundleError):
            raise
        raise BundleError(f"the bundle's layers or normalisation are inconsistent: {err}") from err
