"""Invocations: admitting a call, running it on a backend, finishing it exactly once."""
import base64
import functools
import json
import logging
import re
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, transaction
from django.utils import timezone

from catalog import selectors as catalog_selectors
from billing import services as billing_services
from catalog import services as catalog_services
from execution import early_dispatch
from execution.artifacts import ensure_artifact
from execution.backends import RunTarget, get_backend
from execution.capacity import lent_while_waiting
from execution.models import Invocation
from marketplace.db_pool import connection_lost, drop_lost_connections
from marketplace.dispatch import run_eagerly, run_in_background
from marketplace.errors import ApplicationError, InputError, NotFoundError, PermissionDeniedError
from marketplace.models import ApiKey, User
from marketplace.row_update import RowReader, Update, model_instance, statement_rows
from marketplace.services import api_key_create_derived, api_key_retire, api_key_retiring
from marketplace.services.api_keys import is_derived

ALGORITHM_ERRORS = {"AlgorithmError", "LoadingError", "TimeoutError", "OutOfMemoryError"}
MAX_CALL_DEPTH = 8
logger = logging.getLogger(__name__)


class UnsupportedInput(ApplicationError):
    status_code, error_type = 415, "InputError"


class TooLarge(ApplicationError):
    status_code, error_type = 413, "InputError"

    @classmethod
    def input(cls) -> "TooLarge":
        return cls(f"The input is larger than {settings.EXECUTION_REQUEST_MAX_BYTES} bytes.")


class CallClosed(Exception):
    """The call was closed before it could start (its caller stopped waiting)."""


@dataclass(frozen=True)
class CallOptions:
    timeout: float = 300.0
    stdout: bool = False
    output: str = "default"  # default | raw | void

    callback: str = ""

    @classmethod
    def parse(cls, query) -> "CallOptions":
        try:
            timeout = float(query.get("timeout", settings.EXECUTION_DEFAULT_TIMEOUT))
        except ValueError:
            raise InputError("timeout must be a number of seconds.") from None
        if not 1 <= timeout <= settings.EXECUTION_MAX_TIMEOUT:
            raise InputError(f"timeout must be between 1 and {settings.EXECUTION_MAX_TIMEOUT} s.")
        output = query.get("output", "default") or "default"
        if output not in ("default", "raw", "void"):
            raise InputError("output must be raw or void.")
        callback = query.get("callback", "")
        if callback:
            from execution.webhooks import validate_callback

            callback = validate_callback(callback)
        return cls(timeout=timeout, stdout=str(query.get("stdout", "")).lower() == "true",
                   output=output, callback=callback)


def parse_input(body: bytes, content_type: str) -> dict:
    """The runtime protocol's request line for a body of the given Content-Type."""
    if len(body) > settings.EXECUTION_REQUEST_MAX_BYTES:
        raise TooLarge.input()
    kind = (content_type or "application/json").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            return {"content_type": "json", "data": json.loads(body or b"null")}
        except ValueError as error:
            raise InputError(f"The body is not valid JSON: {error}.") from None
    if kind.startswith("text/"):
        try:
            return {"content_type": "text", "data": body.decode("utf-8")}
        except UnicodeDecodeError:
            raise InputError("A text/plain body must be UTF-8.") from None
    if kind == "application/octet-stream":
        return {"content_type": "binary", "data": base64.b64encode(body).decode()}
    raise UnsupportedInput(f"Send application/json, text/plain or application/octet-stream, "
                           f"not {kind}.")


def platform_api_base(request) -> str:
    """Where a composing algorithm's calls are sent (``listening_api_base``), for a request
    through Django: ASGI's scope, or the WSGI server's own name and port."""
    scope = getattr(request, "scope", None)
    if scope is not None:
        return listening_api_base(scope.get("server"))
    # A WSGI server (the tests' live server): its port, on loopback. Not SERVER_NAME, which
    # a server on a unix socket takes from the Host header.
    port = request.META.get("SERVER_PORT", "")
    return listening_api_base(("127.0.0.1", int(port)) if str(port).isdigit() else None)


def listening_api_base(server: tuple | None) -> str:
    """The configured internal address (EXECUTION_PLATFORM_API), or the address of the
    socket this process took the call on, which the runner's bridge forwards an
    algorithm's API requests to, with its key. Never the request's Host header: the caller
    writes that, and ``Host: 127.0.0.1:<any port>`` sent an algorithm's requests, and the
    key, to any service on the platform's host. Empty (no API for the algorithm) when the
    process listens on a unix socket and nothing is configured. Plain HTTP: the socket's
    own protocol (ASGI's scheme follows a TLS proxy's X-Forwarded-Proto); a web process
    that terminates TLS itself needs EXECUTION_PLATFORM_API."""
    if settings.EXECUTION_PLATFORM_API:
        return settings.EXECUTION_PLATFORM_API
    host, port = server if server else (None, None)
    if not host or not port:
        return ""
    return f"http://{f'[{host}]' if ':' in str(host) else host}:{port}"


def invocation_admit(*, key: ApiKey, user: User, owner: str, name: str, version: str | None,
                     payload: dict, input_bytes: int, options: CallOptions,
                     api_base: str = "", before_hold=None) -> Invocation:
    """Resolve what is called, check the key may call it, and record the call (queued).

    A call made with a derived key is a child of the call that key serves: it joins that
    call's trace, one level deeper, at most MAX_CALL_DEPTH deep. ``before_hold``: called
    with the call and its payload once both are known, before anything is written
    (``invocation_start_sent_early``).
    """
    # Only keys derived for a running call (they have a parent key) can make child calls.
    parent = _call_of_derived_key(key.pk) if is_derived(key) else None
    if parent is not None and parent.depth + 1 >= MAX_CALL_DEPTH:
        raise InputError(f"Algorithms may call each other at most {MAX_CALL_DEPTH} levels "
                         "deep; this call would go deeper.")
    resolved, is_manager = catalog_selectors.version_resolve_for_call(
        owner=owner, name=name, spec=version, user=user)
    version_text = (resolved.version.semantic_version if resolved.version
                    else resolved.build.content_hash)
    if not key.allows_algorithm(resolved.algorithm.owner_name, resolved.algorithm.name,
                                version_text) and not key.allows_algorithm(
            resolved.algorithm.owner_name, resolved.algorithm.name, version):
        raise PermissionDeniedError(f"This key may not call {owner}/{name}.")
    if not resolved.build.artifact_path:
        raise NotFoundError("This version has no runnable build.")
    request_id = uuid.uuid4()  # a root call's trace id is its own request id
    invocation = model_instance(Invocation, {
        "request_id": request_id, "trace_id": parent.trace_id if parent else request_id,
        "depth": parent.depth + 1 if parent else 0, "algorithm_path": resolved.algorithm.path,
        "version_text": version_text, "input_content_type": payload["content_type"],
        "input_bytes": input_bytes,
        "options": {"timeout": options.timeout, "stdout": options.stdout and is_manager,
                    "output": options.output, "show_trace": is_manager, "api_base": api_base,
                    "callback": options.callback,
                    **({"s3_uris": uris} if (uris := _s3_uris(resolved.algorithm,
                                                              payload, parent)) else {})}})
    invocation.parent, invocation.algorithm, invocation.version = (
        parent, resolved.algorithm, resolved.version)
    invocation.build, invocation.caller, invocation.api_key = resolved.build, user, key
    if before_hold is not None:
        before_hold(invocation, payload)
    # Recorded with its hold, all or nothing: a call that cannot be paid leaves no row.
    usage = billing_services.usage_reserve(invocation=invocation, key=key)
    invocation.usage_hold = billing_services.usage_hold_of(usage)
    invocation.usage_headroom = getattr(usage, "headroom", None)
    return invocation


def _call_of_derived_key(key_id: int) -> Invocation | None:
    """The call a derived key was made for (its trace, depth and options), in a statement
    built once: the ORM compiled its query anew for every composed call."""
    sql, reader = _derived_key_call_query()
    rows = statement_rows(sql, [key_id])
    return reader.instance(rows[0]) if rows else None


@functools.cache
def _derived_key_call_query() -> tuple[str, RowReader]:
    from django.db import connection

    reader = RowReader(Invocation, "i", ("trace_id", "depth", "options"))
    quote = connection.ops.quote_name
    column = quote(Invocation._meta.get_field("derived_key").column)
    return (f"SELECT {', '.join(reader.columns)} FROM {quote(Invocation._meta.db_table)} i "
            f"WHERE i.{column} = %s"), reader


S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/[^\s\"'\\]*")


def _s3_uris(algorithm, payload: dict, parent: Invocation | None) -> list[str]:
    """The s3:// objects a composing algorithm's input names: the only ones it may read,
    through its caller's connector, while this call runs (capabilities by reference). A
    child call's input is written by its parent's code, so a child gets only what its
    parent was given."""
    if not algorithm.pipeline_enabled or payload["content_type"] == "binary":
        return []
    text = payload["data"] if isinstance(payload["data"], str) else json.dumps(payload["data"])
    uris = set(S3_URI.findall(text)) if "s3://" in text else set()
    if parent is not None:
        uris &= set(parent.options.get("s3_uris", []))
    return sorted(uris)[:100]


def invocation_call(*, key: ApiKey, user: User, owner: str, name: str, version: str | None,
                    body: bytes, content_type: str, options: CallOptions,
                    api_base: str) -> tuple[Invocation, dict | None]:
    """One call from start to answer: parse the body, admit, dispatch; the envelope, or None
    for ``output=void`` (the caller fetches it later by request id)."""
    invocation, payload = invocation_start(
        key=key, user=user, owner=owner, name=name, version=version, body=body,
        content_type=content_type, options=options, api_base=api_base)
    envelope = invocation_dispatch(invocation=invocation, payload=payload,
                                   wait=options.output != "void")
    return invocation, envelope


def invocation_start(*, key: ApiKey, user: User, owner: str, name: str, version: str | None,
                     body: bytes, content_type: str, options: CallOptions,
                     api_base: str, before_hold=None) -> tuple[Invocation, dict]:
    """Parse the body and admit the call: the recorded call and its runtime request."""
    payload = parse_input(body, content_type)
    invocation = invocation_admit(key=key, user=user, owner=owner, name=name, version=version,
                                  payload=payload, input_bytes=len(body), options=options,
                                  api_base=api_base, before_hold=before_hold)
    return invocation, payload


def invocation_start_sent_early(*, reply_to: str, **call) -> tuple[Invocation, dict]:
    """``invocation_start`` then ``invocation_send`` for a sync call, with the task sent
    before the admission is written, and the worker told the admission's outcome
    (``execution.early_dispatch``). Takes ``invocation_start``'s arguments."""
    sent = []

    def send_first(invocation: Invocation, payload: dict) -> None:
        sent.append(invocation.request_id)  # (a send that fails may still have gone)
        invocation_send(invocation=invocation, payload=payload, wait=True, reply_to=reply_to,
                        early=True)

    try:
        invocation, payload = invocation_start(**call, before_hold=send_first)
    except BaseException:
        if sent:
            early_dispatch.refused(sent[0])
        raise
    try:
        early_dispatch.admitted(invocation)
    except Exception:  # its worker, with no word, will not run it: closed here, unbilled
        invocation_close_unsent(invocation)
        raise
    return invocation, payload


def invocation_close_unsent(invocation: Invocation) -> None:
    """An admitted call no worker will run (its send, or the word of its admission, failed):
    failed as the platform's fault, its hold released now rather than by the reaper. Its
    caller is told by the error that follows."""
    try:
        invocation_finish(invocation=invocation, error_type="InternalError",
                          error_message="The call could not be handed to a worker.",
                          platform_fault=True, answered=True)
    except Exception:  # the reaper closes it later
        logger.warning("Could not close the unsent call %s", invocation.request_id,
                       exc_info=True)


def _target(invocation: Invocation) -> RunTarget:
    build, algorithm = invocation.build, invocation.algorithm
    # Local runners read the unpacked artifact here; runner pods fetch it themselves.
    artifact_dir = (ensure_artifact(content_hash=build.content_hash,
                                    artifact_path=build.artifact_path,
                                    artifact_sha256=build.artifact_sha256)
                    if settings.EXECUTION_BACKEND == "local" else Path("/algo"))
    network = algorithm.network_access == algorithm.NetworkAccess.FULL
    secrets, secrets_stamp = catalog_services.secrets_environment(algorithm=algorithm)
    return RunTarget(
        pool_key=(f"{build.content_hash[:20]}{'-net' if network else ''}"
                  f"{'-api' if algorithm.pipeline_enabled else ''}"
                  f"{'-' + secrets_stamp if secrets_stamp else ''}"),
        env=secrets,
        artifact_dir=artifact_dir, language=build.language, entry=algorithm.name,
        network=network, idle_seconds=algorithm.runner_idle_seconds,
        min_warm=algorithm.min_warm_runners,
        max_runners=settings.EXECUTION_MAX_RUNNERS_PER_VERSION,
        memory_bytes=settings.EXECUTION_MEMORY_BYTES,
        max_processes=settings.EXECUTION_MAX_PROCESSES,
        max_output_bytes=settings.EXECUTION_RESPONSE_MAX_BYTES,
        bridge=algorithm.pipeline_enabled, artifact_path=build.artifact_path,
        artifact_sha256=build.artifact_sha256)


def invocation_run(*, invocation_pk: int | None, payload: dict, row: dict | None = None,
                   request_id: str | None = None, early: bool = False) -> dict | None:
    """Run a call on the backend and finish it; a finished call is never run again.

    ``row``: the call's row as the web tier just wrote it (``invocation_row``), sent with a
    sync call on its first delivery, so the worker neither reads it back nor marks it
    running: a sync call's caller is waiting on the answer, not polling its status. Async
    calls, and any message delivered again, read the row and skip a finished call.

    ``request_id``: the call's, to check the row read back is still that call's. Call
    writes need not wait for the disk, so a crash of the database can lose an admitted
    call, whose id may then be issued again to another; a message for the lost call must
    not run its input as the other call.

    ``early``: sent before its admission was written (``execution.early_dispatch``), with no
    row id: nothing of it runs or is written before the word that it was; refused, or with
    no word, it is dropped (None). Delivered again, it is read by request id, once written.
    """
    if row is not None:
        invocation = _invocation_from_row(invocation_pk, row)
        invocation.admission = "pending" if early else "written"
    else:
        invocation = (_invocation_read_early(request_id) if early
                      else _invocation_read(invocation_pk, request_id))
        if invocation is None:
            return None if early else _lost_to_the_database(request_id)
        if invocation.status in Invocation.FINISHED:
            _hand_back(invocation, invocation.result)  # a caller may still be waiting
            return invocation.result
    now = timezone.now()
    queued_ms = (now - invocation.created_at).total_seconds() * 1000
    timeout = float(invocation.options.get("timeout", 300))
    if row is not None and queued_ms > invocation_wait_seconds(invocation) * 1000:
        # Its caller stopped waiting and was answered: the call is over (invocation_lost).
        return invocation_finish(
            invocation=invocation, error_type="TimeoutError", queue_ms=queued_ms,
            error_message="The call waited in the queue until its caller stopped waiting.",
            platform_fault=True)
    if row is None:
        Invocation.objects.filter(pk=invocation.pk).update(status=Invocation.Status.RUNNING,
                                                           started_at=now)
        _announce(invocation, {"type": "request.status", "status": Invocation.Status.RUNNING})
    else:  # never past the moment its caller stops waiting
        left = invocation_wait_seconds(invocation) - queued_ms / 1000
        timeout = max(min(timeout, left), 0.05)
    # A composing call's key is written with its row: the row must be there first.
    if invocation.algorithm.pipeline_enabled and not _admission_confirmed(invocation):
        return None
    try:
        context, derived = _call_context(invocation, timeout)
    except CallClosed:
        return _stored_envelope(invocation)
    # Its caller is answered before the close is written: on its first delivery only (a
    # message delivered again may be a second run of a call another worker still runs).
    answer_first = row is not None and settings.EXECUTION_ANSWER_BEFORE_CLOSE
    try:
        return _run_and_finish(invocation, payload, timeout, context, derived, queued_ms,
                               answer_first)
    except BaseException:
        if derived is not None:  # the call never reached the statement that retires its key
            api_key_retire(key=derived)
        raise


def _admission_confirmed(invocation: Invocation) -> bool:
    """For a call sent before its admission was written (``admission`` "pending"): wait for
    the word (``execution.early_dispatch``), and take the row id, creation time and hold it
    brings. False, from then on: refused, or no word came; nothing of the call may run or
    be written here. True at once for any other call."""
    admission = getattr(invocation, "admission", "written")
    if admission != "pending":
        return admission == "written"
    from datetime import datetime

    word = early_dispatch.wait(invocation.request_id)
    invocation.admission = "refused" if word is None else "written"
    if word is None:
        return False
    invocation.pk, invocation.usage_hold = word["pk"], word["usage_hold"]
    invocation.usage_headroom = word.get("usage_headroom")
    invocation.created_at = datetime.fromisoformat(word["created_at"])
    return True


def _run_and_finish(invocation: Invocation, payload: dict, timeout: float, context: dict,
                    derived: ApiKey | None, queued_ms: float,
                    answer_first: bool = False) -> dict | None:
    try:
        backend, target = get_backend(), _target(invocation)
        if not _admission_confirmed(invocation):
            return None
        if backend.is_cold(target):
            _prewarm_successors(backend, invocation)
        # A composing call waits on the calls it makes: it lends its worker slot to them.
        with lent_while_waiting() if derived is not None else nullcontext():
            outcome = backend.invoke(target, payload, timeout, context,
                                     on_stdout=_stdout_streamer(invocation))
    except TimeoutError as error:
        return invocation_finish(invocation=invocation, error_type="TimeoutError",
                                 error_message=str(error), queue_ms=queued_ms, retire=derived,
                                 answer_first=answer_first)
    except ApplicationError:
        raise
    except Exception as error:  # the platform's fault, not the algorithm's
        load = type(error).__name__ == "RunnerLoadError"
        return invocation_finish(
            invocation=invocation, error_type="LoadingError" if load else "InternalError",
            error_message=(f"The algorithm failed to load: {str(error)[-2000:]}" if load
                           else f"The call could not be run ({type(error).__name__})."),
            queue_ms=queued_ms, platform_fault=not load, retire=derived,
            answer_first=answer_first)
    try:
        return invocation_finish(invocation=invocation, outcome=outcome, queue_ms=queued_ms,
                                 retire=derived, answer_first=answer_first)
    except DataError as error:
        # The database refused what the algorithm returned (the runner checks for what it
        # knows of: NaN, NUL). The call is still closed, its hold released, and the caller
        # told, rather than left "running" with its credits held. A caller answered before
        # the close keeps its answer: the call is recorded failed, and not billed.
        logger.warning("Could not store the result of %s: %s", invocation.request_id,
                       type(error).__name__)
        return invocation_finish(
            invocation=invocation, error_type="AlgorithmError", queue_ms=queued_ms,
            error_message="The algorithm's result could not be stored.", retire=derived,
            answered=getattr(invocation, "answered_first", False))
    except Exception as error:
        if not (getattr(invocation, "answered_first", False) and connection_lost(error)):
            raise
        # Answered, then the close met a connection the database had dropped (after a
        # restart, each kept connection fails once): written again on a fresh one, so a
        # caller who has the answer is billed for it.
        logger.warning("Closing call %s again: its connection was lost",
                       invocation.request_id)
        drop_lost_connections(error)
        return invocation_finish(invocation=invocation, outcome=outcome, queue_ms=queued_ms,
                                 retire=derived, answered=True)


_ROW_FIELDS = ("request_id", "trace_id", "parent_id", "depth", "algorithm_id", "algorithm_path",
               "version_id", "version_text", "build_id", "caller_id", "api_key_id", "options",
               "input_content_type", "input_bytes")


def invocation_row(invocation: Invocation, *, early: bool = False) -> dict:
    """The fields of a just-admitted call that running it needs, as a task argument.
    ``early``: of a call about to be admitted (``invocation_start_sent_early``): its row id,
    creation time and hold come with the word that it was; until then, the time it was
    sent stands for its creation (its queue time counts from there)."""
    row = {name: getattr(invocation, name) for name in _ROW_FIELDS}
    row["request_id"], row["trace_id"] = str(row["request_id"]), str(row["trace_id"])
    if early:
        row["created_at"], row["usage_hold"] = timezone.now().isoformat(), None
        row["usage_headroom"] = None
        return row
    row["created_at"] = invocation.created_at.isoformat()
    row["usage_hold"] = getattr(invocation, "usage_hold", None)
    row["usage_headroom"] = getattr(invocation, "usage_headroom", None)
    return row


def _invocation_read(pk: int | None, request_id: str | None) -> Invocation | None:
    """The call read back, with its algorithm and build (not the big text columns: the
    build's log, the docs, a stored result); None if it is gone, or its id is now another
    call's (``_lost_to_the_database``). Without ``pk`` (a call sent before it was
    admitted), by its request id."""
    found = (Invocation.objects.select_related("algorithm", "build")
             .defer("result", "stdout", "build__logs", "algorithm__summary"))
    invocation = (found.filter(pk=pk) if pk is not None
                  else found.filter(request_id=request_id)).first()
    if invocation is None or (request_id and str(invocation.request_id) != request_id):
        return None
    return invocation


def _invocation_read_early(request_id: str) -> Invocation | None:
    """A call sent before its admission, read back by request id; if its row is not
    written yet, once the word says it was (None: refused, or no word)."""
    invocation = _invocation_read(None, request_id)
    if invocation is None and early_dispatch.wait(request_id) is not None:
        invocation = _invocation_read(None, request_id)  # written since
    return invocation


def _invocation_from_row(pk: int | None, row: dict) -> Invocation:
    """The call as ``invocation_row`` described it, its algorithm and build from the
    per-process catalog cache: no query."""
    from datetime import datetime

    fields = {name: row[name] for name in _ROW_FIELDS}
    fields["request_id"], fields["trace_id"] = (uuid.UUID(row["request_id"]),
                                                uuid.UUID(row["trace_id"]))
    invocation = model_instance(Invocation, {
        "id": pk, "status": Invocation.Status.QUEUED,
        "created_at": datetime.fromisoformat(row["created_at"]), **fields})
    invocation._state.adding, invocation._state.db = False, "default"
    invocation.algorithm, invocation.build = _run_objects(row["algorithm_id"], row["build_id"])
    invocation.usage_hold = row.get("usage_hold")
    invocation.usage_headroom = row.get("usage_headroom")
    # A sync call's request id reaches its caller with its answer, so nobody can be
    # watching it run: no WebSocket announcements (each asks Redis whether anyone listens).
    invocation.unwatched = True
    return invocation


def _run_objects(algorithm_id: int, build_id: int):
    """An algorithm and build as the worker needs them, remembered while the catalog has not
    changed (the resolution cache's epoch; a build's artifact never changes once built)."""
    from catalog.models import Algorithm, Build
    from catalog.resolution_cache import resolutions

    return resolutions.get_or_set(("run", algorithm_id, build_id), lambda: (
        Algorithm.objects.defer("summary").get(pk=algorithm_id),
        Build.objects.defer("logs").get(pk=build_id)))


def _streams_stdout(invocation: Invocation) -> bool:
    return bool(invocation.options.get("stdout")) and not getattr(invocation, "unwatched",
                                                                  False)


def _stdout_streamer(invocation: Invocation):
    """For a call whose stdout its caller may see: pass printed lines to its watchers live,
    and keep them for a watcher who comes later (``execution.stdout_backlog``)."""
    if not _streams_stdout(invocation):
        return None
    from execution import stdout_backlog

    keep = invocation_wait_seconds(invocation)

    def stream(lines: list[str]) -> None:
        try:
            first = stdout_backlog.append(invocation.request_id, lines, keep_seconds=keep)
        except Exception:  # the lines are still the call's, and live watchers get them
            logger.warning("Could not keep the printed lines of %s for later watchers",
                           invocation.request_id, exc_info=True)
            first = None
        _announce(invocation, {"type": "request.stdout", "lines": lines, "first": first})

    return stream


def _prewarm_successors(backend, invocation: Invocation) -> None:
    """Call-graph pre-warming: a cold start of A also starts the runners of the algorithms
    most of A's calls go on to call, so their first call from A finds them warm."""
    from execution.selectors import call_graph_successors

    for child in call_graph_successors(algorithm_id=invocation.algorithm_id):
        if child.build is None or child.algorithm is None or not child.build.artifact_path:
            continue
        try:
            backend.warm(_target(child))
        except Exception:  # pre-warming is an optimisation: it never fails a call
            logger.warning("Could not pre-warm %s", child.algorithm_path, exc_info=True)


def _call_context(invocation: Invocation, timeout: float):
    """For a pipeline-enabled algorithm: a key derived from this call, for its own calls."""
    if not invocation.algorithm.pipeline_enabled or invocation.api_key_id is None:
        return {}, None
    # Running, with its key, in the statement that writes the key, whichever way it was
    # dispatched: a derived key reads data only while its call runs
    # (datastore.services.served_call). Never a call already closed (by a caller that
    # stopped waiting, or the reaper): that one is not run, and gets no key.
    issued = api_key_create_derived(
        parent=invocation.api_key, name=f"call {invocation.request_id}",
        lifetime_seconds=timeout + 60, then=Update(
            Invocation, invocation.pk, links={"derived_key_id": 0},
            set={"status": Invocation.Status.RUNNING,
                 "started_at": invocation.started_at or timezone.now()},
            where={"status": (Invocation.Status.QUEUED, Invocation.Status.RUNNING),
                   "request_id": invocation.request_id}))
    if issued is None:
        raise CallClosed()
    invocation.derived_key_id = issued.key.pk
    return {"api_key": issued.raw, "api_base": invocation.options.get("api_base", "")}, issued.key


def _storable(text: str) -> str:
    return text.replace("\x00", "\ufffd") if text and "\x00" in text else text


def invocation_finish(*, invocation: Invocation, outcome=None, error_type: str = "",
                      error_message: str = "", queue_ms: float = 0.0,
                      platform_fault: bool = False, retire: ApiKey | None = None,
                      answered: bool = False, answer_first: bool = False) -> dict | None:
    """Close the call, bill it (or release its hold) and store its envelope, once: the row
    is closed by a conditional UPDATE in the same statement as its usage (in one transaction
    with whatever else closing writes), so of two finishers (a worker and a caller giving up
    on it) the second changes nothing and gets the stored envelope. ``platform_fault``: the
    call failed through the platform, not the algorithm (the tree under a root is refunded,
    in billing's own transaction). ``retire``: the call's derived key, retired in the same
    statement whether or not this finisher is the one that closes the call. ``answered``:
    its caller already has its answer; nothing is handed back. ``answer_first``: a caller
    waiting on the result channel gets the envelope before the close is written, not after
    it commits (``_answer_first``). None, writing nothing, for a call sent before its
    admission that was never admitted (``_admission_confirmed``)."""
    if not _admission_confirmed(invocation):
        return None
    options = invocation.options
    fields = {"cold_start_ms": invocation.cold_start_ms, "run_ms": invocation.run_ms}
    stdout, stack = "", ""
    if outcome is not None:
        error_type, error_message = outcome.error_type or "", outcome.error_message
        stdout, stack = outcome.stdout, outcome.stack_trace
        fields["cold_start_ms"], fields["run_ms"] = outcome.cold_start_ms, outcome.run_ms
        queue_ms += outcome.queue_ms
    # What an algorithm printed or raised may hold NUL, which PostgreSQL's text and jsonb
    # refuse: the closing write failed and the call stayed "running", its hold kept.
    stdout, stack, error_message = (_storable(stdout), _storable(stack),
                                    _storable(error_message))
    if error_type:
        envelope = {"error": {"message": error_message, "error_type": error_type}}
        if stack and options.get("show_trace"):
            envelope["error"]["stack_trace"] = stack
        fields["status"], fields["output_bytes"] = Invocation.Status.FAILED, 0
    else:
        response = outcome.response
        metadata = {"content_type": response.get("metadata", {}).get("content_type", "json"),
                    "duration": round((outcome.run_ms or 0) / 1000, 6)}
        if options.get("stdout"):
            metadata["stdout"] = stdout
        envelope = {"result": response.get("result"), "metadata": metadata}
        fields["status"] = Invocation.Status.SUCCEEDED
        fields["output_bytes"] = len(json.dumps(response.get("result")))
    finished_at = timezone.now()
    fields.update(error_type=error_type, error_message=error_message[:1000], result=envelope,
                  stdout=stdout[-100_000:], queue_ms=queue_ms, finished_at=finished_at,
                  total_ms=(finished_at - invocation.created_at).total_seconds() * 1000)
    # By id and request id: call writes need not wait for the disk, so after a crash of the
    # database an id this worker holds may have been issued again, to another call.
    closing = Update(Invocation, invocation.pk, set=fields, where={
        "status": (Invocation.Status.QUEUED, Invocation.Status.RUNNING),
        "request_id": invocation.request_id})
    for name, value in fields.items():
        setattr(invocation, name, value)
    if (answer_first and not answered
            and billing_services.usage_hold_spares_next_call(
                getattr(invocation, "usage_hold", None),
                getattr(invocation, "usage_headroom", None))):
        answered = _answer_first(invocation, envelope)
    session = invocation.parent_id is None and _may_have_session(invocation)
    # The common call closes in one statement (call, usage, hold); a callback makes more
    # writes, in one transaction with it.
    with transaction.atomic() if options.get("callback") else nullcontext():
        closed = billing_services.usage_finish(
            invocation=invocation, succeeded=not error_type, platform_fault=platform_fault,
            closing=closing, also=[api_key_retiring(key=retire)] if retire is not None else [])
        if not closed:  # already closed (by the other of two finishers): its envelope stands
            _stdout_ended(invocation)  # (printed after the other closed it)
            return _stored_envelope(invocation, tell=not answered)
        if session:  # the tree's data://.session, once the call is closed: most trees
            # never make one (then this is one SELECT, and the close needed no transaction)
            from datastore.services import session_delete

            session_delete(trace_id=invocation.trace_id)
        from execution.webhooks import schedule

        schedule(invocation)
        if not answered:
            _hand_back(invocation, envelope)
    # Watchers already saw the printed lines as they came (_stdout_streamer); a later one
    # reads them from the row.
    if not getattr(invocation, "unwatched", False):
        transaction.on_commit(lambda: _announce_finished(invocation, envelope))
    return envelope


def _answer_first(invocation: Invocation, envelope: dict) -> bool:
    """Give a sync call's waiting caller its envelope now, before its close is written
    (``EXECUTION_ANSWER_BEFORE_CLOSE``): the caller does not wait on that statement (a sixth
    of a warm call's time in the server at concurrency 1, docs/benchmarks.md). The close
    follows at once; until it commits, the call reads as unfinished and its hold as held,
    which is why a hold that could refuse its payer's next call is never kept that moment
    longer (``usage_hold_spares_next_call``, checked by the caller of this). A close that
    meets a lost connection is written again on a fresh one (``_run_and_finish``); one that
    still fails leaves the caller its answer and the call failed, unbilled
    (``invocation_broke``), as a worker dying in between leaves it open to the reaper: the
    answer acknowledged its broker message, so it never runs twice. Returns whether the
    caller was answered. Not for calls with a callback, whose webhook is scheduled in the
    close's own transaction; a publish that fails leaves the answer to come after the close,
    as it would without this."""
    from execution import results

    if invocation.options.get("callback") or not _caller_waits_on_channel(invocation):
        return False
    try:
        results.publish(invocation.request_id, envelope)
    except Exception:  # (it may still have reached Redis: the caller takes the first)
        logger.warning("Could not answer call %s before its close; answering after it",
                       invocation.request_id, exc_info=True)
        return False
    invocation.answered_first = True
    return True


def _announce_finished(invocation: Invocation, envelope: dict) -> None:
    _announce(invocation, {"type": "request.finished", "envelope": envelope})
    _stdout_ended(invocation)


def _stdout_ended(invocation: Invocation) -> None:
    if _streams_stdout(invocation):
        from execution import stdout_backlog

        stdout_backlog.ended(invocation.request_id)


def _may_have_session(invocation: Invocation) -> bool:
    """Whether the call's tree may have a data://.session: only composing algorithms (those
    given a derived key) reach one."""
    if invocation.derived_key_id is not None:
        return True
    algorithm = invocation.algorithm if invocation.algorithm_id else None
    return bool(algorithm and algorithm.pipeline_enabled)


def _caller_waits_on_channel(invocation: Invocation) -> bool:
    """Whether a caller waits for the call's result on the result channel (a sync call,
    with ``execution.results`` direct)."""
    from execution import results

    return invocation.options.get("output") != "void" and results.direct()


def _hand_back(invocation: Invocation, envelope: dict) -> None:
    """Give a sync call's result to the web request waiting for it, once it is committed."""
    from execution import results

    if _caller_waits_on_channel(invocation):
        transaction.on_commit(lambda: results.publish(invocation.request_id, envelope))


def _announce(invocation: Invocation, event: dict) -> None:
    """Tell the call's WebSocket watchers (``/ws/requests/<id>``), if it has any.

    Most calls have none; on Redis, asking is one ZCARD over the process's pool, where a
    group_send would cost a new event loop, a new connection and a Lua script per call.
    """
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from execution.consumers import request_group

    layer, group = get_channel_layer(), request_group(invocation.request_id)
    if hasattr(layer, "_group_key") and len(getattr(layer, "hosts", ())) == 1:
        from marketplace.redis_client import redis_client

        if not redis_client().zcard(layer._group_key(group)):
            return
    async_to_sync(layer.group_send)(group, event)


def invocation_get_for_caller(*, request_id: str, user: User,
                              key: ApiKey | None = None) -> Invocation:
    """The caller's call (404 for anyone else's). An algorithm's key for its own calls
    (``ApiKey.acting_user``) reads only the calls it made, not its caller's others."""
    calls = Invocation.objects.filter(request_id=request_id, caller=user)
    if getattr(user, "acting_for_a_call", False):
        calls = calls.filter(api_key=key)
    try:
        invocation = calls.first()
    except (ValueError, DjangoValidationError):  # not a UUID
        invocation = None
    if invocation is None:
        raise NotFoundError("No such request.")
    return invocation


def invocation_dispatch(*, invocation: Invocation, payload: dict, wait: bool) -> dict | None:
    """Hand the call to the execution queue by name; with ``wait``, return its envelope.

    Embedded (no broker): the task runs here, eagerly. With a broker, a worker runs it and
    the result comes back through the result channel; a caller whose worker never answers
    gets a TimeoutError at the call's deadline, never an endless wait.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        if not wait:  # answered at once; the call runs on a thread of this process
            run_in_background("execution.invoke", _task_args(invocation, payload, wait))
            return None
        return run_eagerly("execution.invoke", _task_args(invocation, payload, wait))
    from execution import results

    if results.direct():
        invocation_send(invocation=invocation, payload=payload, wait=wait)
        if not wait:
            return None
        envelope = results.wait(invocation.request_id, invocation_wait_seconds(invocation))
        return envelope if envelope is not None else invocation_lost(invocation=invocation)
    from marketplace.celery import app

    async_result = app.send_task("execution.invoke", args=_task_args(invocation, payload, wait),
                                 queue=settings.EXECUTION_QUEUE)
    if not wait:
        return None
    try:
        return async_result.get(timeout=invocation_wait_seconds(invocation), interval=0.005,
                                propagate=True)
    except Exception as error:  # the worker died, or never answered
        return invocation_lost(invocation=invocation, error_type=(
            "TimeoutError" if "Timeout" in type(error).__name__ else "InternalError"))


def _task_args(invocation: Invocation, payload: dict, wait: bool,
               reply_to: str | None = None, early: bool = False) -> list:
    row = invocation_row(invocation, early=early) if wait else None
    if row is not None and reply_to:
        row["reply_to"] = reply_to  # the waiting web process's inbox (execution.results)
    return [None if early else invocation.pk, payload, row, str(invocation.request_id)]


def _stored_envelope(invocation: Invocation, *, tell: bool = True) -> dict:
    """The envelope the call was closed with (by whichever closer came first), found by its
    request id: its row id may be another call's (``_lost_to_the_database``). ``tell``
    False: its caller has an answer already, and is sent nothing more."""
    stored = Invocation.objects.filter(request_id=invocation.request_id).values_list(
        "result", flat=True).first()
    if stored is not None:
        return stored
    # A worker's sync call (``unwatched``): its caller waits on the result channel.
    return _lost_to_the_database(str(invocation.request_id),
                                 tell=tell and getattr(invocation, "unwatched", False))


def _lost_to_the_database(request_id: str | None, *, tell: bool = True) -> dict:
    """The answer for a call whose row is gone (lost by a crash of the database), or is now
    another call's: nothing more is run or written for it; with ``tell``, a caller still
    waiting on the result channel is told."""
    from execution import results

    logger.error("The call %s found no row of its own", request_id)
    envelope = {"error": {"message": "The call was lost by the platform's database; it is "
                                     "not billed.", "error_type": "InternalError"}}
    if tell and request_id and results.direct():
        results.publish(request_id, envelope)
    return envelope


def invocation_send(*, invocation: Invocation, payload: dict, wait: bool,
                    reply_to: str | None = None, early: bool = False) -> None:
    """Queue the call by name, its result to come back over the direct result channel
    (``execution.results``; to the inbox ``reply_to`` if given): nothing is kept for a
    result backend. ``early``: before its admission is written
    (``invocation_start_sent_early``). An admitted call whose send fails is closed here,
    unbilled (``invocation_close_unsent``), before the error goes on to its caller."""
    from marketplace.broker import send_unread_task

    # argsrepr: the call's id, not a repr of its input (Celery's saferepr of the payload
    # was a twentieth of the web tier's time, and an input is not for the worker's logs).
    try:
        send_unread_task("execution.invoke_early" if early else "execution.invoke",
                         _task_args(invocation, payload, wait, reply_to, early),
                         queue=settings.EXECUTION_QUEUE,
                         argsrepr=f"({invocation.pk or invocation.request_id}, <input>)")
    except Exception:
        if not early:  # (an early call is not admitted yet: its admission is refused)
            invocation_close_unsent(invocation)
        raise


def invocation_wait_seconds(invocation: Invocation) -> float:
    """How long a caller waits for a call's result: its timeout, and a margin for the
    queue and the worker's own writes."""
    return float(invocation.options.get("timeout", 300)) + 15


def invocation_lost(*, invocation: Invocation, error_type: str = "TimeoutError") -> dict:
    """The caller's wait ended with no result: the call fails (unless it just finished, in
    which case that is its answer), and is not billed."""
    return invocation_finish(
        invocation=invocation, error_type=error_type, platform_fault=True,
        error_message="The call did not finish: its worker stopped or never answered.")


def invocation_broke(*, invocation_pk: int | None, request_id: str | None, error: Exception,
                     caller_waits: bool, answered: bool = False) -> dict:
    """The task running a call raised: the database or the broker failed under it (a
    connection the database had closed, say), or a bug. The call fails as the platform's
    fault, unbilled, and a caller waiting on it (``caller_waits``) is answered now rather
    than when its wait runs out. A call found closed already (the failure came after its
    close) gives its caller its stored answer. If the call cannot be closed now (the
    database is still unreachable), the caller is still told, and ``execution.close_broken``
    closes the call, unbilled, once the database answers again. ``answered``: its caller
    has its answer already (given before the close that failed, ``_answer_first``): it is
    sent nothing more, and the call is recorded as answered but not billed."""
    from execution import results
    from execution.tasks import close_broken

    logger.error("The call %s failed in its worker", request_id or invocation_pk,
                 exc_info=error)
    message = (f"The call was answered, but could not be recorded ({type(error).__name__}); "
               "it is not billed." if answered
               else f"The call could not be run ({type(error).__name__}).")
    envelope = {"error": {"message": message, "error_type": "InternalError"}}
    try:
        drop_lost_connections(error)
        if invocation_pk is None:  # sent before its admission (execution.early_dispatch)
            invocation = _invocation_read_early(request_id)
            if invocation is None:  # refused, or no word: its caller was answered by the web
                return envelope
        else:
            invocation = _invocation_read(invocation_pk, request_id)  # as it stands now
        if invocation is None:
            return _lost_to_the_database(request_id)
        if invocation.status not in Invocation.FINISHED:
            # A waiting (sync) caller's call cannot be watched: its id comes with its answer.
            invocation.unwatched = caller_waits
            return invocation_finish(invocation=invocation, error_type="InternalError",
                                     error_message=message, platform_fault=True,
                                     answered=answered)
        envelope = invocation.result  # closed before the failure: its caller may not know
    except Exception as closing_error:
        logger.error("The call %s could not be closed after its failure: it will be, once "
                     "the database answers", request_id or invocation_pk,
                     exc_info=closing_error)
        close_broken.apply_async(args=[invocation_pk, request_id, message],
                                 queue=settings.EXECUTION_QUEUE,
                                 countdown=CLOSE_BROKEN_FIRST_SECONDS)
    if caller_waits and not answered and request_id and results.direct():
        results.publish(request_id, envelope)
    return envelope


CLOSE_BROKEN_FIRST_SECONDS = 2


def invocation_close_broken(*, invocation_pk: int | None, request_id: str | None,
                            error_message: str) -> str:
    """Close a call its worker could not close after it broke (``invocation_broke``): failed,
    unbilled, its caller already answered. Returns what it found: "closed", "closed
    already" or "lost" (no such call, or its id is now another call's)."""
    invocation = _invocation_read(invocation_pk, request_id)
    if invocation is None:
        return "lost"
    if invocation.status in Invocation.FINISHED:
        return "closed already"
    invocation_finish(invocation=invocation, error_type="InternalError",
                      error_message=error_message, platform_fault=True, answered=True)
    return "closed"


def invocation_reap_stuck() -> int:
    """Fail calls that can no longer finish: queued or running well past their timeout and
    past the broker's redelivery window (their worker and its redelivery are both gone).
    Their holds are released (the platform's fault: nothing is billed). Returns how many."""
    from datetime import timedelta

    now, reaped = timezone.now(), 0
    grace = settings.CELERY_VISIBILITY_TIMEOUT + 60
    candidates = Invocation.objects.filter(
        status__in=[Invocation.Status.QUEUED, Invocation.Status.RUNNING],
        created_at__lt=now - timedelta(seconds=grace))
    for invocation in candidates.only("pk", "request_id", "options", "created_at"):
        limit = float(invocation.options.get("timeout", 300)) + grace
        if (now - invocation.created_at).total_seconds() > limit:
            invocation_finish(invocation=invocation, error_type="InternalError",
                              platform_fault=True,
                              error_message="The call was lost: its worker stopped and the "
                                            "call was not delivered again.")
            reaped += 1
    return reaped


def invocation_tree(invocation: Invocation) -> dict:
    """The call and every call it made, with where each hop's time went."""
    node = {"request_id": str(invocation.request_id), "algorithm": invocation.algorithm_path,
            "version": invocation.version_text, "status": invocation.status,
            "error_type": invocation.error_type or None, "depth": invocation.depth,
            "queue_ms": invocation.queue_ms, "cold_start_ms": invocation.cold_start_ms,
            "run_ms": invocation.run_ms, "total_ms": invocation.total_ms}
    node["children"] = [invocation_tree(child)
                        for child in invocation.children.order_by("created_at")]
    return node
