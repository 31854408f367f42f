"""Semantic versions: bumping on publish and matching the specs callers send."""
import re
from dataclasses import dataclass

from marketplace.errors import InputError

# At most nine digits a number: the columns are 32-bit, and Python refuses to read an
# integer of more than 4,300 digits (a 500 for ".../hello/999...9").
EXACT = re.compile(r"^(\d{1,9})\.(\d{1,9})\.(\d{1,9})$")
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
    given, text = text or "", (text or "").strip()
    if given and not text:  # a version given blank (".../hello/%20"): not "the latest"
        raise InputError("A blank version is not a version: use 1.2.3, 1.2, 1.2.*, 1.*, "
                         "latest or a build hash, or leave it out for the latest.")
    if text in ("", "latest", "*"):
        return Spec("latest")
    if m := EXACT.match(text):
        return Spec("exact", *map(int, m.groups()))
    if m := re.match(r"^(\d{1,9})(?:\.(\d{1,9}))?(?:\.\*)?$", text):
        major, minor = m.groups()
        return Spec("partial", int(major), int(minor) if minor is not None else None)
    if BUILD_HASH.match(text):
        return Spec("hash", build_hash=text)
    shown = text if len(text) <= 40 else text[:40] + "..."
    raise InputError(f"'{shown}' is not a version: use 1.2.3, 1.2, 1.2.*, 1.*, latest or a "
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
