"""``s3://bucket/key`` through the Data API: the caller's own connector for that bucket, its
credentials decrypted only here, objects streamed through boto3."""
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from django.db import IntegrityError

from datastore.models import Connector
from marketplace.crypto import decrypt, encrypt
from marketplace.errors import (ApplicationError, ConflictError, InputError, NotFoundError,
                                PermissionDeniedError)
from marketplace.services import audit_record

BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
REGION = re.compile(r"^[a-z0-9\-]{0,30}$")


def check_endpoint(endpoint_url: str) -> None:
    """An S3-compatible endpoint must be http(s) on a public address: never this machine,
    a private network, link-local (cloud metadata) or reserved space — unless its host is
    listed in DATA_CONNECTOR_ALLOWED_HOSTS. Checked when a connector is made and again
    before each use (a name can be pointed elsewhere later)."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    from django.conf import settings

    if not endpoint_url:
        return
    parts = urlsplit(endpoint_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username \
            or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InputError("endpoint_url must be http(s)://host[:port] and nothing more.")
    if parts.hostname in settings.DATA_CONNECTOR_ALLOWED_HOSTS:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443)}
    except (socket.gaierror, UnicodeError):
        raise InputError(f"endpoint_url's host {parts.hostname!r} does not resolve.") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            raise InputError("endpoint_url must be a public address, not " + address + ".")


@dataclass(frozen=True)
class S3Path:
    bucket: str
    key: str  # "" or ending in "/" names a folder

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def s3_path_parse(raw: str) -> S3Path:
    """``s3://bucket/key`` or ``s3:/bucket/key`` (how a proxy may fold the slashes)."""
    rest = re.sub(r"^s3:/+", "", raw)
    bucket, _, key = rest.partition("/")
    if not BUCKET.match(bucket):
        raise InputError("That is not a bucket name.")
    if any(part in (".", "..") for part in key.split("/")) or "\\" in key or any(
            ord(c) < 32 or ord(c) == 127 for c in key):
        raise InputError("S3 keys cannot contain '.' or '..' segments, backslashes or control "
                         "characters.")
    return S3Path(bucket, key)


class ConnectorError(ApplicationError):
    status_code, error_type = 502, "InternalError"


def _owner_q(key) -> dict:
    if key.organization_id:
        return {"owner_org_id": key.organization_id}
    return {"owner_user_id": key.user_id}


def connector_for(key, path: S3Path, *, write: bool) -> Connector:
    """The key owner's connector for the bucket; keys derived for running algorithms never
    get one (connectors are never visible to algorithms)."""
    from datastore.services import require_scope, served_call

    require_scope(key, "read-write" if write else "read")
    is_derived, invocation = served_call(key)
    if is_derived:
        # A running algorithm never sees a connector; it may read, through its caller's,
        # exactly the s3:// objects its input named, and nothing else.
        if write or invocation is None or path.uri not in invocation.options.get("s3_uris", []):
            raise NotFoundError(f"No connector for {path.uri}.")
    connector = Connector.objects.filter(kind=Connector.Kind.S3, bucket=path.bucket,
                                         **_owner_q(key)).first()
    if connector is None:
        raise NotFoundError(f"No connector for {path.uri}: add one for bucket "
                            f"'{path.bucket}' first.")
    if not path.key.startswith(connector.path_prefix):
        raise PermissionDeniedError(f"This connector only reaches keys under "
                                    f"'{connector.path_prefix}'.")
    if write and not connector.writable:
        raise PermissionDeniedError("This connector is read-only.")
    return connector


# boto3 clients by connector and its settings: making one costs 4 ms of CPU (131 ms the
# first time in a process), and a kept one keeps its connections to the store open. They
# are safe to share between threads. A connector changed or deleted is simply not asked for
# again; the oldest go past MAX_CLIENTS.
MAX_CLIENTS = 64
_clients: OrderedDict = OrderedDict()
_clients_lock = threading.Lock()


def _client(connector: Connector):
    try:
        check_endpoint(connector.endpoint_url)  # at every use, kept client or not
    except InputError as error:
        raise PermissionDeniedError(f"This connector's endpoint is refused: {error.message}") \
            from None
    settings_key = (connector.pk, connector.endpoint_url, connector.region,
                    bytes(connector.encrypted_access_key_id),
                    bytes(connector.encrypted_secret_access_key))
    with _clients_lock:
        client = _clients.get(settings_key)
        if client is not None:
            _clients.move_to_end(settings_key)
            return client
    client = boto3.client(
        "s3", endpoint_url=connector.endpoint_url or None, region_name=connector.region or None,
        aws_access_key_id=decrypt(connector.encrypted_access_key_id),
        aws_secret_access_key=decrypt(connector.encrypted_secret_access_key))
    with _clients_lock:
        _clients[settings_key] = client
        while len(_clients) > MAX_CLIENTS:
            _clients.popitem(last=False)
    return client


def _call(action, *args, **kwargs):
    try:
        return action(*args, **kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NotFound"):
            raise NotFoundError("No such object.") from None
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise PermissionDeniedError(f"The store refused: {code}.") from None
        raise ConnectorError(f"The store answered {code or 'an error'}.") from None
    except BotoCoreError as error:
        raise ConnectorError(f"The store could not be reached ({type(error).__name__}).") \
            from None


def object_stream(connector: Connector, path: S3Path):
    body = _call(_client(connector).get_object, Bucket=path.bucket, Key=path.key)
    return body["Body"], body.get("ContentLength")


def object_or_listing(connector: Connector, path: S3Path, marker: str | None,
                      page_size: int) -> tuple[tuple | None, dict | None]:
    """What a read of ``path`` finds: the object's (stream, length), in one request to the
    store (no HEAD first: most reads are of files), else the listing of the folder it names
    (with or without its slash). (object, None) or (None, listing); NotFoundError if
    neither."""
    if path.key and not path.key.endswith("/"):
        try:
            return object_stream(connector, path), None
        except NotFoundError:
            pass  # no such object: perhaps a folder
    body = listing(connector, path, marker, page_size)
    if body["files"] or body["folders"] or not path.key:
        return None, body
    raise NotFoundError(f"No such object: {path.uri}.")


def object_exists(connector: Connector, path: S3Path) -> bool:
    if not path.key or path.key.endswith("/"):
        return False
    try:
        _call(_client(connector).head_object, Bucket=path.bucket, Key=path.key)
    except NotFoundError:
        return False
    return True


def object_put(connector: Connector, path: S3Path, stream) -> None:
    _call(_client(connector).upload_fileobj, stream, path.bucket, path.key)


def object_delete(connector: Connector, path: S3Path) -> None:
    _call(_client(connector).delete_object, Bucket=path.bucket, Key=path.key)


def listing(connector: Connector, path: S3Path, marker: str | None, page_size: int) -> dict:
    prefix = path.key if not path.key or path.key.endswith("/") else path.key + "/"
    arguments = {"Bucket": path.bucket, "Prefix": prefix, "Delimiter": "/",
                 "MaxKeys": page_size}
    if marker:
        arguments["ContinuationToken"] = marker
    page = _call(_client(connector).list_objects_v2, **arguments)
    body = {"folders": [{"name": p["Prefix"][len(prefix):].rstrip("/")}
                        for p in page.get("CommonPrefixes", [])],
            "files": [{"filename": o["Key"][len(prefix):], "size": o["Size"],
                       "last_modified": o["LastModified"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
                      for o in page.get("Contents", [])]}
    if page.get("IsTruncated"):
        body["marker"] = page["NextContinuationToken"]
    return body


def require_manager(key) -> None:
    """Connectors are managed (and listed) with a manage key, never by a running algorithm."""
    from datastore.services import served_call

    if not key.can_manage or served_call(key)[0]:
        raise PermissionDeniedError("Connectors need a key with the manage scope.")


def connector_create(*, key, actor, bucket: str, access_key_id: str, secret_access_key: str,
                     path_prefix: str = "", writable: bool = False, endpoint_url: str = "",
                     region: str = "") -> Connector:
    from datastore.services import require_scope

    require_scope(key, "read-write")
    require_manager(key)
    if not BUCKET.match(bucket or ""):
        raise InputError("bucket must be an S3 bucket name.")
    if not access_key_id or not secret_access_key:
        raise InputError("access_key_id and secret_access_key are required.")
    if not REGION.match(region or ""):
        raise InputError("region must look like us-east-1.")
    if path_prefix and (any(part in ("", ".", "..") for part in path_prefix.rstrip("/")
                            .split("/")) or "\\" in path_prefix or path_prefix.startswith("/")):
        raise InputError("path_prefix must be a relative key prefix without '.', '..' or empty "
                         "segments.")
    if path_prefix and not path_prefix.endswith("/"):
        path_prefix += "/"  # a prefix is a folder: "inbox" must not admit "inbox-private/"
    check_endpoint(endpoint_url)
    owner = ({"owner_org_id": key.organization_id, "owner_name": key.owner_name}
             if key.organization_id else {"owner_user_id": key.user_id,
                                          "owner_name": key.owner_name})
    try:
        connector = Connector.objects.create(
            kind=Connector.Kind.S3, bucket=bucket, path_prefix=path_prefix, writable=writable,
            endpoint_url=endpoint_url, region=region,
            encrypted_access_key_id=encrypt(access_key_id),
            encrypted_secret_access_key=encrypt(secret_access_key), **owner)
    except IntegrityError:
        raise ConflictError(f"There is already a connector for bucket '{bucket}'.") from None
    audit_record(action="data.connector_create", actor=actor, target=connector,
                 data={"bucket": bucket, "path_prefix": path_prefix, "writable": writable,
                       "endpoint_url": endpoint_url})
    return connector


def connector_delete(*, key, actor, connector_id: str) -> None:
    try:
        connector = Connector.objects.filter(uuid=connector_id, **_owner_q(key)).first()
    except Exception:  # not a UUID
        connector = None
    if connector is None or not key.can_manage:
        raise NotFoundError("No such connector.")
    audit_record(action="data.connector_delete", actor=actor, target=connector,
                 data={"bucket": connector.bucket})
    with _clients_lock:  # its credentials leave this process's memory with it
        for settings_key in [k for k in _clients if k[0] == connector.pk]:
            del _clients[settings_key]
    connector.delete()


def connector_output(connector: Connector) -> dict:
    """What the API shows of a connector: never its credentials."""
    return {"id": str(connector.uuid), "type": connector.kind, "bucket": connector.bucket,
            "path_prefix": connector.path_prefix, "writable": connector.writable,
            "endpoint_url": connector.endpoint_url, "region": connector.region,
            "created_at": connector.created_at.isoformat()}
