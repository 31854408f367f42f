"""What a process does when the database closed one of its connections under it (a restart,
a failover, an idle timeout): psycopg's pool lends a connection without testing it (that
would be a round trip on every checkout), so every connection it kept idle would fail one
request or call in turn. The first failure has the pool test them all instead."""
import logging

from django.db import connections

logger = logging.getLogger(__name__)


def check_pool_if_connection_lost() -> bool:
    """If a connection of this thread was lost, test (and replace) the connections its pool
    keeps idle. Before the lost connection is closed (it is found by its state). Returns
    whether a pool was checked."""
    checked = False
    for connection in connections.all(initialized_only=True):
        raw = connection.connection
        pool = getattr(connection, "pool", None) if raw is not None else None
        if pool is not None and raw.closed:  # psycopg: closed, or broken under it
            try:
                pool.check()  # connections it cannot replace now, it keeps trying for
            except Exception:  # never in the way of the answer the failure itself gets
                logger.exception("Could not check the database connection pool")
            checked = True
    return checked
