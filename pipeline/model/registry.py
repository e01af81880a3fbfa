"""Model artifacts on disk: ``model.joblib`` plus ``metadata.json`` holding its sha256.

An artifact whose bytes do not match the recorded checksum is refused: a model that was truncated or
damaged never classifies a complaint. That checksum sits beside the artifact, so it cannot catch a swap
of both files: the product loads only artifacts whose sha256 the settings trust (``trusted_models``),
checked before anything is unpickled (unpickling runs code). A model trained with another
scikit-learn is refused (its pickle may load and predict wrongly); other library differences are warned of.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import logging
import pickle
import platform
import zlib
from collections.abc import Collection
from datetime import datetime, timezone
from pathlib import Path

import joblib
import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper

METADATA_FILE = "metadata.json"
MODEL_FILE = "model.joblib"


class ModelIntegrityError(RuntimeError):
    """The artifact is missing, untrusted, built with another scikit-learn, or its checksum does not match."""


logger = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import pandas
    import sklearn

    # jieba's installed version from its metadata: importing jieba to ask costs a tenth of a second of
    # every start-up, and a model segmenting with rjieba never needs it
    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "numpy": np.__version__, "pandas": pandas.__version__, "jieba": importlib.metadata.version("jieba"),
            "joblib": joblib.__version__}


def save_artifact(estimator, metadata: dict, out_dir: Path | str) -> dict:
    """Write the estimator and its metadata; returns the metadata as written (with version and sha256)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / MODEL_FILE
    joblib.dump(estimator, model_path, compress=3)
    sha = file_sha256(model_path)
    trained_at = datetime.now(timezone.utc)
    metadata = {
        **metadata,
        "version": f"{metadata.get('name', 'cause-model')}-{trained_at:%Y%m%d}-{sha[:8]}",
        "trained_at": trained_at.isoformat(timespec="seconds"),
        "library_versions": library_versions(),
        "artifact": MODEL_FILE,
        "sha256": sha,
    }
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, ensure_ascii=False, indent=2), encoding="utf-8")
    return metadata


def check_library_versions(model_path: Path, recorded: dict[str, str]) -> None:
    """Refuse a model pickled by another scikit-learn (major.minor); warn of other libraries' major.minor
    differences. Patch releases (pandas 3.1.1 → 3.1.2) keep pickles and results: a warning on every command
    after a routine upgrade would teach users to ignore the one that matters, so those are logged at debug."""
    installed = library_versions()
    trained_with, have = recorded.get("scikit-learn"), installed["scikit-learn"]
    if trained_with and _minor(trained_with) != _minor(have):
        raise ModelIntegrityError(
            f"{model_path}: trained with scikit-learn {trained_with}, this installation has {have}; retrain it "
            f"with `complaints train` or install scikit-learn=={trained_with}")
    for name, version in recorded.items():
        if name in installed and installed[name] != version:
            level = logging.WARNING if _minor(installed[name]) != _minor(version) else logging.DEBUG
            logger.log(level, "%s: trained with %s %s, running %s %s", model_path, name, version, name, installed[name])


def _minor(version: str) -> list[str]:
    return version.split(".")[:2]


def load_artifact(model_path: Path | str, trusted: Collection[str] | None = None) -> tuple[object, dict]:
    """Load ``model.joblib`` (or the folder holding it) after checking its sha256: against ``trusted``
    (the settings' trusted_models) when given, and against its metadata."""
    model_path = Path(model_path)
    if model_path.is_dir():
        model_path = model_path / MODEL_FILE
    metadata_path = model_path.parent / METADATA_FILE
    if not model_path.is_file():
        raise ModelIntegrityError(f"{model_path}: no model file here; train one with `complaints train`")
    artifact = model_path.read_bytes()  # the bytes checked are the bytes unpickled
    actual = hashlib.sha256(artifact).hexdigest()
    if trusted is not None and actual not in trusted:
        raise ModelIntegrityError(
            f"{model_path}: sha256 {actual} is not a trusted model, so it is not loaded (loading runs code). "
            f"If you trust this file, add the hash to trusted_models in your settings file.")
    if not metadata_path.is_file():
        raise ModelIntegrityError(f"{metadata_path}: missing; a model without metadata cannot be verified")
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    if actual != metadata.get("sha256"):
        raise ModelIntegrityError(
            f"{model_path}: checksum {actual[:12]}… does not match metadata {str(metadata.get('sha256'))[:12]}…; "
            "the file was changed or damaged — restore it or retrain with `complaints train`")
    check_library_versions(model_path, metadata.get("library_versions", {}))
    try:
        return load_joblib_bytes(artifact), metadata
    except ModuleNotFoundError as exc:
        if not str(exc.name).startswith("pipeline."):
            raise
        raise ModelIntegrityError(
            f"{model_path}: saved by an earlier layout of this product (it needs the module {exc.name}); "
            "retrain it with `complaints train`") from exc


def load_joblib_bytes(artifact: bytes):
    """``joblib.load`` of a zlib-compressed or plain joblib file's bytes, with the C unpickler.

    joblib unpickles with Python's pure-Python unpickler (it swaps each array placeholder for the array
    read after it in the stream): for the shipped model's 350,000 vocabulary entries, twice as long as
    this, and the largest part of a classify-text start (bench/startup.py). Here the C unpickler reads
    the stream, each placeholder reads its array at the same point through joblib's own reader, and the
    placeholders are then replaced by their arrays in the loaded object. Any file this cannot take —
    another joblib format, an object that used an array while being unpickled — goes to ``joblib.load``.
    """
    try:
        if artifact[:1] == b"\x78":  # joblib's zlib prefix (compress=3, how save_artifact writes)
            return _load_joblib_stream(zlib.decompress(artifact))
        if artifact[:1] == pickle.PROTO:
            return _load_joblib_stream(artifact)
    except (pickle.UnpicklingError, zlib.error, _PlaceholderLeft, AttributeError, TypeError, ValueError):
        logger.debug("fast model load failed; loading with joblib", exc_info=True)
    return joblib.load(io.BytesIO(artifact))


class _PlaceholderLeft(Exception):
    """An array placeholder was used before it could be replaced by its array."""


def _load_joblib_stream(stream_bytes: bytes):
    stream = io.BytesIO(stream_bytes)  # no peek(): the C unpickler reads no further than each frame's end
    placeholders: list[_ArrayPlaceholder] = []

    class Placeholder(_ArrayPlaceholder):
        def __setstate__(self, state):
            self.__dict__.update(state)
            self.array = self.read(reader, True)  # the array's bytes follow the placeholder's frame
            placeholders.append(self)

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
                return Placeholder
            return super().find_class(module, name)

    unpickler = Unpickler(stream)

    class reader:  # what NumpyArrayWrapper.read asks of joblib's unpickler
        file_handle, mmap_mode, np = stream, None, np
        find_class = unpickler.find_class

    loaded = _replace_placeholders(unpickler.load(), {})
    if any(not p.replaced for p in placeholders):
        raise _PlaceholderLeft(f"{sum(not p.replaced for p in placeholders)} array(s) not found in the loaded object")
    return loaded


class _ArrayPlaceholder(NumpyArrayWrapper):
    replaced = False


_ATOMIC = (str, bytes, int, float, bool, type(None), np.ndarray, np.generic, type)


def _replace_placeholders(obj, seen: dict):
    """``obj`` with every placeholder replaced by its array: in dicts, lists, tuples and object attributes."""
    if isinstance(obj, _ArrayPlaceholder):
        obj.replaced = True
        return obj.array
    if isinstance(obj, _ATOMIC):
        return obj
    if id(obj) in seen:
        return seen[id(obj)]
    seen[id(obj)] = obj
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(value, _ATOMIC):
                obj[key] = _replace_placeholders(value, seen)
    elif isinstance(obj, list):
        obj[:] = [_replace_placeholders(value, seen) for value in obj]
    elif isinstance(obj, tuple):
        replaced = tuple(_replace_placeholders(value, seen) for value in obj)
        seen[id(obj)] = replaced
        return replaced
    elif isinstance(getattr(obj, "__dict__", None), dict):
        _replace_placeholders(obj.__dict__, seen)
    return obj
