"""What a process does when the database closed one of its connections under it (a restart,
a failover, an idle timeout): psycopg's pool lends a connection without testing it (that
would be a round trip on every checkout), so every connection it kept idle would fail one
request or call in turn. The first failure has the pool test them all instead."""
from django.db import connections


def check_pool_if_connection_lost() -> bool:
    """If a connection of this thread was lost, test (and replace) the connections its pool
    keeps idle. Before the lost connection is closed (it is found by its state). Returns
    whether a pool was checked."""
    checked = False
    for connection in connections.all(initialized_only=True):
        raw = connection.connection
        pool = getattr(connection, "pool", None) if raw is not None else None
        if pool is not None and raw.closed:  # psycopg: closed, or broken under it
            pool.check()
            checked = True
    return checked
