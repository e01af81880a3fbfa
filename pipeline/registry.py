"""Model artifacts on disk: ``model.joblib`` plus ``metadata.json`` holding its sha256.

An artifact whose bytes do not match the recorded checksum is refused: a model that was truncated,
edited or swapped never classifies a complaint.
"""
from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

import joblib

METADATA_FILE = "metadata.json"
MODEL_FILE = "model.joblib"


class ModelIntegrityError(RuntimeError):
    """The artifact is missing, or its checksum does not match its metadata."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import jieba
    import numpy
    import pandas
    import sklearn

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "numpy": numpy.__version__, "pandas": pandas.__version__, "jieba": jieba.__version__,
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


def load_artifact(model_path: Path | str) -> tuple[object, dict]:
    """Load ``model.joblib`` (or the folder holding it) after checking its sha256."""
    model_path = Path(model_path)
    if model_path.is_dir():
        model_path = model_path / MODEL_FILE
    metadata_path = model_path.parent / METADATA_FILE
    if not model_path.is_file():
        raise ModelIntegrityError(f"{model_path}: no model file here; train one with `complaints train`")
    if not metadata_path.is_file():
        raise ModelIntegrityError(f"{metadata_path}: missing; a model without metadata cannot be verified")
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    actual = file_sha256(model_path)
    if actual != metadata.get("sha256"):
        raise ModelIntegrityError(
            f"{model_path}: checksum {actual[:12]}… does not match metadata {str(metadata.get('sha256'))[:12]}…; "
            "the file was changed or damaged — restore it or retrain with `complaints train`")
    return joblib.load(model_path), metadata
