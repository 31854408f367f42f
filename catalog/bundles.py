"""Source bundles: validating archives before anything is written, and unpacking them safely.

An archive is refused, with a clear InputError, when a member's path is absolute or climbs
out (``..``), when it holds links, devices or FIFOs, when it claims more files or bytes than
the limits allow, or when it lacks the entry point its language needs. Validation reads the
archive's index only; extraction writes regular files one by one, counting real bytes, into a
fresh directory that is removed if anything goes wrong.
"""
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

from django.conf import settings

from marketplace.errors import InputError, PayloadTooLargeError

ENTRY_POINTS = {"python3-1": "src/{name}.py", "javascript": "src/{name}.js"}
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_files: int
    max_unpacked_bytes: int

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(max_files=settings.BUNDLE_MAX_FILES,
                   max_unpacked_bytes=settings.BUNDLE_MAX_UNPACKED_BYTES)


@dataclass
class BundleInfo:
    """What validation learned: format, files (after stripping one wrapper folder), sizes."""

    archive_format: str
    files: dict[str, int] = field(default_factory=dict)  # path -> size
    strip: str = ""  # a single top-level folder that wrapped everything, if any
    readme: str = ""

    @property
    def unpacked_bytes(self) -> int:
        return sum(self.files.values())


@dataclass(frozen=True)
class _Member:
    name: str
    size: int
    kind: str  # "file", "dir" or a refusal reason


def detect_format(head: bytes, filename: str = "", content_type: str = "") -> str:
    """``tar.gz`` or ``zip``, from the magic bytes (never trusting the name alone)."""
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    raise InputError(
        "The bundle must be a .tar.gz or a .zip archive "
        f"(got {content_type or 'unknown type'}{' named ' + filename if filename else ''})."
    )


def _tar_members(fileobj: BinaryIO) -> Iterator[_Member]:
    try:
        with tarfile.open(fileobj=fileobj, mode="r:gz") as archive:
            for info in archive:
                if info.isdir():
                    kind = "dir"
                elif info.isreg():
                    kind = "file"
                elif info.issym() or info.islnk():
                    kind = "a link"
                else:
                    kind = "a device or special file"
                yield _Member(info.name, info.size, kind)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise InputError(f"The bundle is not a readable .tar.gz archive: {error}") from None


def _zip_members(fileobj: BinaryIO) -> Iterator[_Member]:
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(f"The bundle is not a readable .zip archive: {error}") from None
    with archive:
        for info in archive.infolist():
            mode = info.external_attr >> 16
            if info.is_dir():
                kind = "dir"
            elif stat.S_ISLNK(mode):
                kind = "a link"
            elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no type bits, a plain file
                kind = "a device or special file"
            else:
                kind = "file"
            yield _Member(info.filename, info.file_size, kind)


def _clean_path(name: str) -> str:
    if "\\" in name or "\x00" in name:
        raise InputError(f"Refused '{name}': backslashes and NUL bytes are not allowed in paths.")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise InputError(f"Refused '{name}': absolute paths are not allowed in a bundle.")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise InputError(f"Refused '{name}': paths may not climb out of the bundle ('..').")
    return "/".join(parts)


def inspect(fileobj: BinaryIO, archive_format: str, *, language: str, algorithm_name: str,
            limits: Limits | None = None) -> BundleInfo:
    """Validate the archive's index against the limits and the language's layout."""
    limits = limits or Limits.from_settings()
    members = _tar_members(fileobj) if archive_format == "tar.gz" else _zip_members(fileobj)
    info = BundleInfo(archive_format=archive_format)
    count, total = 0, 0
    for member in members:
        path = _clean_path(member.name)
        if member.kind not in ("file", "dir"):
            raise InputError(f"Refused '{member.name}': bundles may not contain {member.kind}.")
        count += 1
        if count > limits.max_files:
            raise InputError(f"The bundle has more than {limits.max_files} entries.")
        if member.kind == "file" and path:
            total += member.size
            if total > limits.max_unpacked_bytes:
                raise InputError(
                    f"The bundle unpacks to more than {limits.max_unpacked_bytes} bytes.")
            info.files[path] = member.size
    fileobj.seek(0)
    info.strip = _wrapper_folder(info.files)
    if info.strip:
        info.files = {p[len(info.strip) + 1:]: s for p, s in info.files.items()}
    entry = ENTRY_POINTS[language].format(name=algorithm_name)
    if entry not in info.files:
        raise InputError(f"The bundle has no {entry}: a {language} algorithm named "
                         f"'{algorithm_name}' needs it as its entry point.")
    return info


def _wrapper_folder(files: dict[str, int]) -> str:
    """The one folder everything sits in (``myalgo/src/…``), when there is no ``src/`` at top."""
    tops = {p.split("/", 1)[0] for p in files}
    if len(tops) == 1 and all("/" in p for p in files) and not any(p.startswith("src/") for p in files):
        return tops.pop()
    return ""


def _iter_files(fileobj: BinaryIO, info: BundleInfo) -> Iterator[tuple[str, BinaryIO]]:
    """(path relative to the bundle root, a stream of its bytes) for each regular file."""
    def relative(name: str) -> str | None:
        path = _clean_path(name)
        if info.strip:
            if not path.startswith(info.strip + "/"):
                return None
            path = path[len(info.strip) + 1:]
        return path if path in info.files else None

    if info.archive_format == "tar.gz":
        with tarfile.open(fileobj=fileobj, mode="r:gz") as archive:
            for member in archive:
                path = relative(member.name) if member.isreg() else None
                if path is not None:
                    yield path, archive.extractfile(member)
    else:
        with zipfile.ZipFile(fileobj) as archive:
            for member in archive.infolist():
                path = None if member.is_dir() else relative(member.filename)
                if path is not None:
                    with archive.open(member) as stream:
                        yield path, stream


def content_hash(fileobj: BinaryIO, info: BundleInfo, *, language: str) -> str:
    """SHA-256 over (path, file SHA-256) in path order, plus the language: the build's name."""
    digests = {}
    for path, stream in _iter_files(fileobj, info):
        digest = hashlib.sha256()
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
        digests[path] = digest.hexdigest()
    fileobj.seek(0)
    overall = hashlib.sha256(f"language={language}\n".encode())
    for path in sorted(digests):
        overall.update(f"{path}\0{digests[path]}\n".encode())
    return overall.hexdigest()


def read_text_member(fileobj: BinaryIO, info: BundleInfo, path: str, limit: int = 200_000) -> str:
    """One small text file of the bundle (for README.md), or '' if absent."""
    if path not in info.files:
        return ""
    for member_path, stream in _iter_files(fileobj, info):
        if member_path == path:
            data = stream.read(limit)
            fileobj.seek(0)
            return data.decode("utf-8", errors="replace")
    fileobj.seek(0)
    return ""


def extract(fileobj: BinaryIO, info: BundleInfo, destination: Path,
            limits: Limits | None = None) -> None:
    """Write the bundle's regular files under ``destination`` (which must not exist yet).

    Real bytes are counted as they are written, so an archive whose index lies about sizes
    is stopped at the limit; on any failure the whole destination is removed.
    """
    limits = limits or Limits.from_settings()
    destination.mkdir(parents=True)
    written = 0
    try:
        for path, stream in _iter_files(fileobj, info):
            target = destination.joinpath(*path.split("/"))
            if destination.resolve() not in target.resolve().parents:
                raise InputError(f"Refused '{path}': it would land outside the bundle.")
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "xb") as out:
                for chunk in iter(lambda: stream.read(_CHUNK), b""):
                    written += len(chunk)
                    if written > limits.max_unpacked_bytes:
                        raise InputError(
                            f"The bundle unpacks to more than {limits.max_unpacked_bytes} bytes.")
                    out.write(chunk)
            os.chmod(target, 0o644)
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    finally:
        fileobj.seek(0)


def open_spooled(chunks: Iterator[bytes], max_bytes: int) -> tuple[BinaryIO, str, int]:
    """Copy an upload into an anonymous temporary file, refusing it past ``max_bytes`` (413).

    Returns the file (rewound), the archive's SHA-256 and its size. The file has no name on
    disk, so nothing is left behind whatever happens next.
    """
    spool = tempfile.TemporaryFile(prefix="bundle-")
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            spool.close()
            raise PayloadTooLargeError(f"The bundle is larger than {max_bytes} bytes.")
        digest.update(chunk)
        spool.write(chunk)
    spool.seek(0)
    return spool, digest.hexdigest(), size
