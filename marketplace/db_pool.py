"""What a process does when the database closed its connections under it (a restart, a
failover, an idle timeout): psycopg's pool lends a connection without testing it (that
would be a round trip on every checkout), so every connection it kept idle would fail one
request or call in turn. The first failure has the pool test those it keeps instead;
connections lent out at the time fail their own request each."""
import logging

from django.db import close_old_connections, connections

logger = logging.getLogger(__name__)
# PostgreSQL's codes for a connection lost: its class 08, and the server shutting down.
_LOST_STATES = ("57P01", "57P02", "57P03")


def check_pool_if_connection_lost(error: BaseException | None = None) -> bool:
    """If ``error`` (or what caused it) says a connection was lost, or a connection of this
    thread is found closed: this thread's connections go back to their pool first (outside
    a transaction; a transaction's failed rollback may have left one lent that looks sound),
    then the pool tests (and replaces) the connections it keeps. Returns whether a pool was
    checked."""
    lost = error is not None and connection_lost(error)
    checked = False
    for alias in connections:  # (the pools are the process's: a lost connection may have
        connection = connections[alias]  # been another thread's)
        pool = getattr(connection, "pool", None)
        if pool is None:
            continue
        raw = connection.connection
        if lost or (raw is not None and raw.closed):  # psycopg: closed, or broken under it
            try:
                if not connection.in_atomic_block:
                    connection.close()  # back to the pool: a broken one is dropped there
                pool.check()  # connections it cannot replace now, it keeps trying for
            except Exception:  # never in the way of the answer the failure itself gets
                logger.exception("Could not check the database connection pool")
            checked = True
    return checked


def drop_lost_connections(error: BaseException) -> None:
    """After ``error``, in a task that goes on (or tries again) outside any transaction:
    the pool checked if a connection was lost, and this thread's connections closed as at
    the end of a request (a failed one is not used again)."""
    check_pool_if_connection_lost(error)
    close_old_connections()


def connection_lost(error: BaseException) -> bool:
    """Whether ``error``, or an error it came from, is psycopg's for a lost connection (a
    transaction's rollback that failed on it raises from the statement's error)."""
    import psycopg

    for found in _causes(error):
        if isinstance(found, (psycopg.OperationalError, psycopg.InterfaceError)):
            state = getattr(found, "sqlstate", None)
            if state is None or state.startswith("08") or state in _LOST_STATES:
                return True
    return False


def statement_gave_up(error: BaseException) -> bool:
    """Whether ``error``, or an error it came from, is PostgreSQL's for a statement that
    gave up at a limit, having written nothing: it waited for a lock longer than its
    ``lock_timeout`` (55P03), or ran longer than its ``statement_timeout`` (57014)."""
    return any(getattr(found, "sqlstate", None) in ("55P03", "57014")
               for found in _causes(error))


def _causes(error: BaseException | None):
    """``error`` and the errors it came from (its cause, else its context), each once."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__
