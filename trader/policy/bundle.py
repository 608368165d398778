"""The policy bundle: weights as plain float32 arrays, normalisation statistics and manifest.json.

Files: ``weights.bin`` (every layer's weight then bias, float32 little-endian, in manifest order),
``normalisation.json`` (mean and std of each feature over the training window) and ``manifest.json``
(feature schema and order, action map, layers, library versions, training window and data hash,
metrics, ``files``: name -> sha256, and golden inputs with the actions they must give). Nothing is
ever unpickled: loading reads bytes and JSON only, and refuses a bundle that fails any check.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trader.policy.runtime import Layer, PolicyRuntime

MANIFEST = "manifest.json"
WEIGHTS = "weights.bin"
NORMALISATION = "normalisation.json"
FORMAT = 1


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


def write(out: Path, layers: list[Layer], mean: np.ndarray, std: np.ndarray, manifest: dict[str, Any],
          golden_inputs: list[tuple[list[float], float]]) -> Bundle:
    """Write the bundle into ``out`` (created) and return it loaded and verified."""
    out.mkdir(parents=True, exist_ok=True)
    blob = b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for lay in layers for a in (lay.weight, lay.bias))
    norm = _dumps({"mean": [float(x) for x in mean], "std": [float(x) for x in std]})
    (out / WEIGHTS).write_bytes(blob)
    (out / NORMALISATION).write_bytes(norm)
    runtime = PolicyRuntime(layers, mean, std, tuple(manifest["action_map"]))
    golden = [{"features": f, "position": p, "action": runtime.act(np.asarray(f), p),
               "scores": [float(x) for x in runtime.scores(np.asarray(f), p)]} for f, p in golden_inputs]
    full = dict(manifest)
    full.update({
        "format": FORMAT,
        "policy_version": sha256(blob + norm)[:12],
        "layers": [{"weight": list(lay.weight.shape), "bias": list(lay.bias.shape), "activation": lay.activation}
                   for lay in layers],
        "golden": golden,
        "files": {WEIGHTS: sha256(blob), NORMALISATION: sha256(norm)},
    })
    (out / MANIFEST).write_bytes(_dumps(full))
    return load(out)


def load(path: Path, expected_schema: str | None = None) -> Bundle:
    """Read and verify a bundle: checksums, layout, schema and golden outputs. Raises BundleError."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise BundleError(f"{path} has no {MANIFEST}: not a policy bundle") from None
    except json.JSONDecodeError as err:
        raise BundleError(f"{path / MANIFEST} is not valid JSON: {err}") from None
    for key in ("format", "files", "feature_schema", "feature_names", "action_map", "layers", "golden", "algo"):
        if key not in manifest:
            raise BundleError(f"{path / MANIFEST} lacks {key!r}")
    if manifest["format"] != FORMAT:
        raise BundleError(f"bundle format {manifest['format']} is not the supported format {FORMAT}")
    contents: dict[str, bytes] = {}
    for name, digest in manifest["files"].items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{file} is listed in the manifest but missing")
        data = file.read_bytes()
        if sha256(data) != digest:
            raise BundleError(f"checksum mismatch for {name}: the manifest says {digest[:16]}..., "
                              f"the file hashes to {sha256(data)[:16]}... (the file was changed or corrupted)")
        contents[name] = data
    if set(contents) != {WEIGHTS, NORMALISATION}:
        raise BundleError(f"the manifest's files are {sorted(contents)}, expected {WEIGHTS} and {NORMALISATION}")
    if expected_schema is not None and manifest["feature_schema"] != expected_schema:
        raise BundleError(f"the bundle was trained on feature schema {manifest['feature_schema']!r}, "
                          f"this deployment serves {expected_schema!r}")
    names = manifest["feature_names"]
    if not names or len(set(names)) != len(names):
        raise BundleError("the manifest's feature_names are empty or repeat a name")
    runtime = _runtime(manifest, contents)
    for i, case in enumerate(manifest["golden"]):
        got = runtime.act(np.asarray(case["features"], np.float64), float(case["position"]))
        scores = runtime.scores(np.asarray(case["features"], np.float64), float(case["position"]))
        if got != case["action"] or not np.allclose(scores, case["scores"], rtol=1e-4, atol=1e-5):
            raise BundleError(f"golden case {i}: the policy gives action {got}, the manifest expects "
                              f"{case['action']} (scores differ by {np.max(np.abs(scores - case['scores'])):.3g})")
    if not manifest["golden"]:
        raise BundleError("the manifest has no golden cases to verify the policy with")
    return Bundle(path, manifest, runtime)


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
        return PolicyRuntime(layers, np.asarray(norm["mean"]), np.asarray(norm["std"]),
                             tuple(float(a) for a in manifest["action_map"]))
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, BundleError):
            raise
        raise BundleError(f"the bundle's layers or normalisation are inconsistent: {err}") from err
