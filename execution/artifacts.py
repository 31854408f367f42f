"""Build artifacts on the execution host: fetched from storage once, verified, unpacked."""
import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.storage import storages


class ArtifactError(RuntimeError):
    """The stored artifact is missing or does not match its recorded hash."""


def artifact_root() -> Path:
    return Path(settings.EXECUTION_ARTIFACT_DIR)


def ensure_artifact(*, content_hash: str, artifact_path: str, artifact_sha256: str) -> Path:
    """The unpacked artifact's directory (``source/``, ``venv/``), read-only for sandboxes."""
    target = artifact_root() / content_hash
    if os.path.exists(os.path.join(target, ".complete")):  # every call asks
        return target
    artifact_root().mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{content_hash[:12]}-", dir=artifact_root()))
    try:
        digest = hashlib.sha256()
        archive = scratch / "artifact.tar.gz"
        with storages["sources"].open(artifact_path, "rb") as stored, open(archive, "wb") as out:
            for chunk in iter(lambda: stored.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        if artifact_sha256 and digest.hexdigest() != artifact_sha256:
            raise ArtifactError(f"Artifact {artifact_path} does not match its hash.")
        unpacked = scratch / "unpacked"
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(unpacked, filter="tar")
        for root, dirs, files in os.walk(unpacked):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
            for name in files:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    os.chmod(path, 0o755 if os.access(path, os.X_OK) else 0o644)
        (unpacked / ".complete").touch()
        try:
            os.rename(unpacked, target)
        except OSError:  # another worker unpacked it first
            if not (target / ".complete").exists():
                raise
        return target
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
