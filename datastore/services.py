"""The Data API's operations: parsing ``data://`` paths, permissions, streaming files in and
out of the ``data`` storage, collections and their ACLs."""
import functools
import hashlib
import io
import re
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import IntegrityError, transaction
from django.db.models import Sum

from datastore.models import NAME_PATTERN, Collection, DataFile
from marketplace.errors import (ApplicationError, ConflictError, InputError, NotFoundError,
                                PayloadTooLargeError, PermissionDeniedError)
from marketplace.models import ApiKey, Membership, Organization, User
from marketplace.row_update import statement_rows
from marketplace.services import audit_record

ACL_FROM_STRINGS = {tuple(strings): acl for acl, strings in Collection.ACL_STRINGS.items()}


def data_storage():
    return storages["data"]


# --- paths --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataPath:
    owner: str
    collection: str | None = None
    file: str | None = None
    space: str = ""  # for a running algorithm's spaces: how the caller named it

    @property
    def uri(self) -> str:
        if self.space:
            return f"data://{self.space}" + (f"/{self.file}" if self.file else "")
        return "data://" + "/".join(p for p in (self.owner, self.collection, self.file) if p)


def data_path_parse(raw: str, *, key: ApiKey) -> DataPath:
    """``owner[/collection[/file]]`` (``.my`` is the key's own namespace; ``.algo`` and
    ``.session`` are a running algorithm's spaces). Anything that could step outside —
    ``..``, ``.``, empty segments, backslashes, control characters — is refused before
    anything is read or written."""

    text = raw.strip("/") if raw.endswith("/") else raw
    if not text:
        raise InputError("Name a collection: data://.my/<collection>[/<file>].")
    if "\\" in text or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InputError("Data paths cannot contain backslashes or control characters.")
    parts = text.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InputError("Data paths cannot contain empty, '.' or '..' segments.")
    if parts[0] in (".algo", ".session"):
        return _space_path(parts, key)
    if len(parts) > 3:
        raise InputError("Collections hold files, not folders: use data://owner/collection/file.")
    for part in parts[1:]:
        if not re.match(NAME_PATTERN, part):
            raise InputError(f"'{part}' is not a valid name: 1 to 255 characters, letters, "
                             "digits, spaces, '_', '-' and '.', starting with a letter or digit.")
    owner = key.owner_name if parts[0] == ".my" else parts[0]
    return DataPath(owner, *parts[1:])


# Spaces of a running algorithm, stored as collections whose names no path can spell
# (they start with "~"): data://.algo/temp (files expire after a day), data://.algo/perm,
# and data://.session (shared by the whole call tree, deleted when its root call ends).
SPACE_MARK = "~"
TEMP_SUFFIX = "~temp"


def _space_path(parts: list[str], key) -> DataPath:
    invocation = served_call(key)[1]
    if invocation is None:
        raise NotFoundError("Only a running algorithm has data://.algo and data://.session.")
    require_scope(key, "read")  # a caller whose key has no data access gives its calls none
    for part in parts[1:]:
        if not re.match(NAME_PATTERN, part):
            raise InputError(f"'{part}' is not a valid name.")
    if parts[0] == ".algo":
        if len(parts) < 2 or parts[1] not in ("temp", "perm") or len(parts) > 3:
            raise InputError("Use data://.algo/temp/<file> or data://.algo/perm/<file>.")
        algorithm = invocation.algorithm
        return DataPath(algorithm.owner_name, f"~algo~{algorithm.uuid}~{parts[1]}",
                        parts[2] if len(parts) > 2 else None, space=f".algo/{parts[1]}")
    if len(parts) > 2:
        raise InputError("Use data://.session/<file>.")
    from execution.selectors import call_is_running

    if not call_is_running(request_id=invocation.trace_id):  # the tree's root has ended
        raise NotFoundError("This call tree's data://.session has ended with its root call.")
    return DataPath(invocation.caller.username, f"~session~{invocation.trace_id.hex}",
                    parts[1] if len(parts) > 1 else None, space=".session")


# --- who may do what ----------------------------------------------------------------------
@dataclass
class SessionPrincipal:
    """The signed-in person on the data pages, seen as the services see a key: their own
    namespace, full data access, never derived for a call."""

    user: User
    organization_id: None = None
    parent_id: None = None
    can_manage: bool = True
    data_access: str = "read-write"

    @property
    def user_id(self) -> int:
        return self.user.pk

    @property
    def created_by_id(self) -> int:
        return self.user.pk

    @property
    def owner_name(self) -> str:
        return self.user.username

    def allows_data(self, level: str) -> bool:
        return True

def owner_of(owner: str) -> tuple[User | None, Organization | None]:
    user = User.objects.filter(username__iexact=owner).first()
    if user is not None:
        return user, None
    org = Organization.objects.filter(name__iexact=owner).first()
    if org is not None:
        return None, org
    raise NotFoundError(f"No such owner: {owner}.")


def namespace_owned(key: ApiKey, owner: str) -> bool:
    """Whether ``key`` owns the namespace ``owner`` (reading); 404 for an organization the
    key has no part in and nothing readable from (non-members must not learn it exists, as
    ``/v1/organizations/<name>`` answers them)."""
    user, org = owner_of(owner)
    owns = is_owner(key, owner_user_id=user and user.pk, owner_org_id=org and org.pk,
                    write=False)
    # (A private collection is never readable by a non-owner: those are not even loaded.)
    shared = org.collections.exclude(read_acl=Collection.ReadAcl.PRIVATE) if org else None
    if org is not None and not owns and not any(
            can_read(key, collection, owns=False) for collection in shared.iterator()):
        raise NotFoundError(f"No such owner: {owner}.")
    return owns


def is_owner(key: ApiKey, *, owner_user_id: int | None, owner_org_id: int | None,
              write: bool) -> bool:
    """The namespace's own keys; for an organization, also its members' keys (owners and
    admins only, to write). A key derived for a running algorithm is never an owner: it acts
    for third-party code, which must not reach its caller's private data."""
    if served_call(key)[0]:
        return False
    if owner_user_id is not None:
        return key.organization_id is None and key.user_id == owner_user_id
    if key.organization_id == owner_org_id:
        return True
    user_id = key.user_id or key.created_by_id
    roles = [Membership.Role.OWNER, Membership.Role.ADMIN] if write else list(Membership.Role)
    return key.organization_id is None and Membership.objects.filter(
        organization_id=owner_org_id, user_id=user_id, role__in=roles).exists()


def served_call(key) -> tuple[bool, object | None]:
    """Whether ``key`` was derived for a call, and that call while it runs (else None).
    Remembered on the key object for the request (one query)."""
    if not hasattr(key, "_served_call"):
        invocation = None
        if not isinstance(key, SessionPrincipal):
            from execution.selectors import invocation_for_derived_key

            invocation = invocation_for_derived_key(key=key)
        running = invocation is not None and invocation.status == "running"
        key._served_call = (invocation is not None, invocation if running else None)
    return key._served_call


def require_scope(key: ApiKey, level: str) -> None:
    if not key.allows_data(level):
        raise PermissionDeniedError(
            "This key may not " + ("read" if level == "read" else "write") + " data "
            f"(its data access is '{key.data_access}').")


def can_read(key: ApiKey, collection: Collection, *, owns: bool | None = None) -> bool:
    """``owns``: whether the key owns the collection's namespace, when the caller already
    knows (a listing asks once for all of one owner's collections)."""
    if owns is None:
        owns = is_owner(key, owner_user_id=collection.owner_user_id,
                        owner_org_id=collection.owner_org_id, write=False)
    if owns:
        return True
    if collection.read_acl == Collection.ReadAcl.PUBLIC:
        return True
    if collection.read_acl == Collection.ReadAcl.ALGORITHMS:  # "algo://.my/*"
        call = served_call(key)[1]
        return call is not None and call.algorithm.owner_name.lower() == \
            collection.owner_name.lower()
    return False


def collection_for(path: DataPath, key: ApiKey, *, write: bool) -> Collection:
    """The collection a path names, if the key may read it (or write it); a collection the
    key cannot read is 404, never 403: its existence is not told."""
    if path.space:  # the running algorithm's own space (data_path_parse checked the key)
        return _space_collection(path, write=write)
    require_scope(key, "read-write" if write else "read")
    collection = Collection.objects.filter(owner_name__iexact=path.owner,
                                           name__iexact=path.collection).first()
    if collection is None or not can_read(key, collection):
        raise NotFoundError(f"No such collection: data://{path.owner}/{path.collection}.")
    if write and not is_owner(key, owner_user_id=collection.owner_user_id,
                               owner_org_id=collection.owner_org_id, write=True):
        raise PermissionDeniedError("Only the collection's owner can change it.")
    return collection


def _space_collection(path: DataPath, *, write: bool) -> Collection:
    collection = Collection.objects.filter(owner_name__iexact=path.owner,
                                           name=path.collection).first()
    if collection is None and write:
        owner_user, owner_org = owner_of(path.owner)
        try:
            with transaction.atomic():
                collection = Collection.objects.create(
                    owner_user=owner_user, owner_org=owner_org, owner_name=path.owner,
                    name=path.collection, read_acl=Collection.ReadAcl.PRIVATE)
        except IntegrityError:
            collection = Collection.objects.get(owner_name__iexact=path.owner,
                                                name=path.collection)
    if collection is None:
        raise NotFoundError(f"Nothing in {path.uri} yet.")
    return collection


def session_delete(*, trace_id) -> int:
    """The root call ended: its tree's data://.session goes with it. Most trees never make
    one: then this is one prepared lookup (the ORM compiled its query for every composed
    call's root, about a millisecond of CPU on this machine's slow phase)."""
    found = statement_rows(_session_lookup(), [f"~session~{trace_id.hex}"])
    if not found:
        return 0
    with transaction.atomic():
        files = _lock_files(DataFile.objects.filter(collection_id=found[0][0]))
        Collection.objects.filter(pk=found[0][0]).delete()
        transaction.on_commit(lambda: _delete_blobs(list(files.values())))
    return len(files)


@functools.cache
def _session_lookup() -> str:
    from django.db import connection

    quote, meta = connection.ops.quote_name, Collection._meta
    return (f"SELECT {quote(meta.pk.column)} FROM {quote(meta.db_table)} "
            f"WHERE {quote(meta.get_field('name').column)} = %s")


def temp_expire(*, older_than) -> int:
    """Files in data://.algo/temp spaces last a day."""
    with transaction.atomic():
        files = _lock_files(DataFile.objects.filter(
            collection__name__startswith="~algo~", collection__name__endswith=TEMP_SUFFIX,
            updated_at__lt=older_than))
        DataFile.objects.filter(pk__in=list(files)).delete()
        transaction.on_commit(lambda: _delete_blobs(list(files.values())))
    return len(files)


def _acl_from(body_acl) -> str:
    if body_acl is None:
        return Collection.ReadAcl.ALGORITHMS
    if not isinstance(body_acl, dict) or not isinstance(body_acl.get("read"), list) or not all(
            isinstance(item, str) for item in body_acl["read"]):
        raise InputError('acl must look like {"read": []}, {"read": ["algo://.my/*"]} or '
                         '{"read": ["user://*"]}.')
    value = ACL_FROM_STRINGS.get(tuple(body_acl["read"]))
    if value is None:
        raise InputError(f"Unknown read ACL {body_acl['read']!r}: use [] (private), "
                         '["algo://.my/*"] (my algorithms) or ["user://*"] (public).')
    return value


# --- collections --------------------------------------------------------------------------
def collection_create(*, parent: DataPath, name: str, acl, key: ApiKey,
                      actor: User) -> Collection:
    require_scope(key, "read-write")
    if parent.collection is not None:
        raise InputError("Collections hold files, not folders: create it under data://.my.")
    if not re.match(NAME_PATTERN, name):  # one name: not a path ("a/b" is a file in a)
        raise InputError(f"'{name}' is not a valid collection name: 1 to 255 characters, "
                         "letters, digits, spaces, '_', '-' and '.', starting with a letter "
                         "or digit.")
    path = data_path_parse(f"{parent.owner}/{name}", key=key)
    owner_user, owner_org = owner_of(path.owner)
    if not is_owner(key, owner_user_id=owner_user.pk if owner_user else None,
                     owner_org_id=owner_org.pk if owner_org else None, write=True):
        raise PermissionDeniedError(f"You cannot create collections for '{path.owner}'.")
    read_acl = _acl_from(acl)
    try:
        with transaction.atomic():
            collection = Collection.objects.create(
                owner_user=owner_user, owner_org=owner_org,
                owner_name=(owner_user.username if owner_user else owner_org.name),
                name=path.collection, read_acl=read_acl)
    except IntegrityError:
        raise ConflictError(f"data://{path.owner}/{path.collection} already exists.") from None
    audit_record(action="data.collection_create", actor=actor, target=collection,
                 organization=owner_org, data={"acl": collection.acl})
    return collection


def collection_set_acl(*, collection: Collection, acl, actor: User) -> Collection:
    before = collection.acl
    collection.read_acl = _acl_from(acl)
    collection.save(update_fields=["read_acl", "updated_at"])
    audit_record(action="data.acl_change", actor=actor, target=collection,
                 organization=collection.owner_org, data={"before": before, "after": collection.acl})
    return collection


def collection_delete(*, collection: Collection, force: bool, actor: User) -> int:
    with transaction.atomic():
        files = _lock_files(DataFile.objects.filter(collection=collection))
        if files and not force:
            raise ConflictError(f"{collection} is not empty ({len(files)} files): delete with "
                                "force=true to delete them too.")
        audit_record(action="data.collection_delete", actor=actor, target=collection,
                     organization=collection.owner_org, data={"files": len(files)})
        collection.delete()
        transaction.on_commit(lambda: _delete_blobs(list(files.values())))
    return len(files)


def _lock_files(queryset) -> dict[int, str]:
    """Lock the rows and read their storage keys in one step, so a blob is deleted exactly
    when its row is (a row added or changed meanwhile waits or is left alone)."""
    return dict(queryset.select_for_update().values_list("pk", "storage_key"))


def _delete_blobs(keys: list[str]) -> None:
    storage = data_storage()
    for storage_key in keys:
        storage.delete(storage_key)


# --- files ----------------------------------------------------------------------------------
class CountingReader(io.RawIOBase):
    """Reads a request body in chunks, hashing and counting as it goes, and stops the upload
    the moment it passes the limit: a large file never sits whole in memory."""

    def __init__(self, stream, limit: int):
        self.stream, self.limit, self.size = stream, limit, 0
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = 1 << 20) -> bytes:
        chunk = self.stream.read(n if n and n > 0 else 1 << 20)
        self.size += len(chunk)
        if self.size > self.limit:
            raise PayloadTooLargeError(f"A file can be at most {self.limit} bytes.")
        self.digest.update(chunk)
        return chunk

    def readinto(self, buffer) -> int:
        chunk = self.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


def _used_bytes(collection: Collection) -> int:
    owner = ({"collection__owner_user_id": collection.owner_user_id} if collection.owner_user_id
             else {"collection__owner_org_id": collection.owner_org_id})
    return DataFile.objects.filter(**owner).aggregate(total=Sum("size"))["total"] or 0


def file_put(*, collection: Collection, name: str, stream, length: int | None,
             actor: User) -> DataFile:
    """Store a file from a stream, chunk by chunk; replacing a file swaps it in only once the
    new bytes are stored whole. The owner's quota is checked before (from Content-Length),
    while streaming, and again under a lock on the owner once the size is known, so
    uploads in parallel cannot pass it together. Bytes that end up in no row are deleted."""
    limit = settings.DATA_MAX_FILE_BYTES
    if length is not None and length > limit:
        raise PayloadTooLargeError(f"A file can be at most {limit} bytes.")
    room = settings.DATA_QUOTA_BYTES - _used_bytes(collection)
    if length is not None and length > room:
        raise _over_quota(collection, room)
    reader = CountingReader(stream, min(limit, max(room, 0)))
    storage, storage_key = data_storage(), f"{collection.uuid}/{uuid.uuid4()}"
    saved_as = None
    try:
        saved_as = storage.save(storage_key, File(reader, name=storage_key))
        data_file, old_key = _record_file(collection, name, saved_as, reader)
    except PayloadTooLargeError:
        storage.delete(saved_as or storage_key)
        if reader.size > limit:
            raise
        raise _over_quota(collection, room) from None
    except Exception:
        storage.delete(saved_as or storage_key)
        raise
    if old_key:
        transaction.on_commit(lambda: _delete_blobs([old_key]))
    return data_file


def _record_file(collection: Collection, name: str, saved_as: str, reader) -> tuple:
    for attempt in range(2):
        try:
            with transaction.atomic():
                _lockowner_of(collection)
                existing = DataFile.objects.select_for_update().filter(
                    collection=collection, name=name).first()
                replaced = existing.size if existing else 0
                if _used_bytes(collection) - replaced + reader.size > settings.DATA_QUOTA_BYTES:
                    raise PayloadTooLargeError("quota")
                if existing is None:
                    return DataFile.objects.create(
                        collection=collection, name=name, storage_key=saved_as,
                        size=reader.size, sha256=reader.digest.hexdigest()), None
                old_key = existing.storage_key
                existing.storage_key, existing.size = saved_as, reader.size
                existing.sha256 = reader.digest.hexdigest()
                existing.save()
                return existing, old_key
        except IntegrityError:  # the same new name, stored at the same moment: replace it
            if attempt:
                raise
    raise AssertionError("unreachable")


def _lockowner_of(collection: Collection) -> None:
    """Uploads of one owner take turns at this point (the quota is the owner's)."""
    if collection.owner_user_id:
        list(User.objects.select_for_update().filter(pk=collection.owner_user_id)
             .values_list("pk", flat=True))
    else:
        list(Organization.objects.select_for_update().filter(pk=collection.owner_org_id)
             .values_list("pk", flat=True))


def _over_quota(collection: Collection, room: int) -> "QuotaExceeded":
    return QuotaExceeded(f"This would pass the storage quota of {collection.owner_name} "
                         f"({settings.DATA_QUOTA_BYTES} bytes; {max(room, 0)} left).")


def file_delete(*, data_file: DataFile) -> None:
    storage_key = data_file.storage_key
    with transaction.atomic():
        data_file.delete()
        transaction.on_commit(lambda: _delete_blobs([storage_key]))


class QuotaExceeded(ApplicationError):
    status_code, error_type = 413, "InputError"
