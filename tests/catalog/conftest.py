"""Catalog fixtures: bundles made on the fly, algorithms, successful builds without pip."""
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from catalog import services
from catalog.models import Build, SourceBundle

DEMO = Path(__file__).resolve().parents[2] / "catalog" / "demo" / "hello"


def tar_gz(files: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_bytes(files: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def demo_files(name: str = "hello", *, unique: bool = False) -> dict[str, bytes]:
    """The demo bundle; ``unique`` adds a file so its content (and build) is new."""
    files = {p.relative_to(DEMO).as_posix(): p.read_bytes() for p in DEMO.rglob("*") if p.is_file()}
    if unique:
        import uuid

        files["build-id.txt"] = uuid.uuid4().hex.encode()
    if name != "hello":
        files[f"src/{name}.py"] = files.pop("src/hello.py")
    return files


def upload(algorithm, actor, data: bytes, content_type: str = "application/gzip"):
    return services.source_bundle_upload(algorithm=algorithm, actor=actor, chunks=iter([data]),
                                         content_type=content_type)


@pytest.fixture
def algorithm(user):
    return services.algorithm_create(actor=user, owner=user.username, name="hello",
                                     label="Hello", tagline="Says hello")


def fake_successful_build(algorithm, actor, content: str = "v1") -> Build:
    """A succeeded build without running pip: for tests of publishing and resolution."""
    bundle = upload(algorithm, actor, tar_gz({f"src/{algorithm.name}.py": f"# {content}\n"}))
    return Build.objects.create(algorithm=algorithm, bundle=bundle,
                                content_hash=bundle.content_hash, language=algorithm.language,
                                status=Build.Status.SUCCEEDED, artifact_path="artifacts/fake")


@pytest.fixture
def succeeded_build(algorithm, user):
    return fake_successful_build(algorithm, user)


__all__ = ["SourceBundle", "demo_files", "fake_successful_build", "tar_gz", "upload", "zip_bytes"]
