"""Semantic versions: bumping on publish and matching the specs callers send."""
import re
from dataclasses import dataclass

from marketplace.errors import InputError

EXACT = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
BUILD_HASH = re.compile(r"^[0-9a-f]{8,64}$")


@dataclass(frozen=True)
class Spec:
    """What a caller asked for: ``latest``, an exact version, a partial one, or a build hash."""

    kind: str  # "latest" | "exact" | "partial" | "hash"
    major: int | None = None
    minor: int | None = None
    patch: int | None = None
    build_hash: str = ""


def parse_spec(text: str | None) -> Spec:
    text = (text or "").strip()
    if text in ("", "latest", "*"):
        return Spec("latest")
    if m := EXACT.match(text):
        return Spec("exact", *map(int, m.groups()))
    if m := re.match(r"^(\d+)(?:\.(\d+))?(?:\.\*)?$", text):
        major, minor = m.groups()
        return Spec("partial", int(major), int(minor) if minor is not None else None)
    if BUILD_HASH.match(text):
        return Spec("hash", build_hash=text)
    raise InputError(f"'{text}' is not a version: use 1.2.3, 1.2, 1.2.*, 1.*, latest or a "
                     "build hash.")


FIRST_VERSION = {"major": (1, 0, 0), "minor": (0, 1, 0), "revision": (0, 0, 1)}


def bump(last: tuple[int, int, int] | None, version_type: str) -> tuple[int, int, int]:
    """The next version after ``last`` (None: nothing published yet)."""
    if version_type not in FIRST_VERSION:
        raise InputError("version_type must be major, minor or revision.")
    if last is None:
        return FIRST_VERSION[version_type]
    major, minor, patch = last
    if version_type == "major":
        return major + 1, 0, 0
    if version_type == "minor":
        return major, minor + 1, 0
    return major, minor, patch + 1
