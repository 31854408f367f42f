"""One Redis client per process, its connection pool shared by every thread (for the few
places that talk to Redis directly rather than through Django's cache or Channels)."""
import redis
from django.conf import settings

_client: redis.Redis | None = None


def redis_client() -> redis.Redis:
    global _client
    if _client is None:
        # Its commands are short (no blocking reads): a Redis that stops answering fails
        # one within seconds instead of hanging its thread, or the web's event loop.
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10,
                                       socket_connect_timeout=5)
    return _client


_blocking: dict[float, redis.Redis] = {}


def blocking_client(socket_timeout: float) -> redis.Redis:
    """A client for blocking reads (BLPOP), shared by the process's threads. redis-py gives
    up reading a reply after its default socket timeout (5 s), which ended every longer
    wait: BLPOP's own timeout bounds a wait, and ``socket_timeout``, a little longer, only
    backs it up. Keepalive finds a connection whose peer vanished long before that."""
    client = _blocking.get(socket_timeout)
    if client is None:
        client = _blocking[socket_timeout] = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=socket_timeout, socket_connect_timeout=5,
            socket_keepalive=True)
    return client


def rpush_expiring(key: str, values: list, seconds: float) -> int:
    """Append to a list that expires ``seconds`` from now (one round trip); its new length."""
    pipe = redis_client().pipeline(transaction=False)
    pipe.rpush(key, *values)
    pipe.expire(key, int(seconds))
    return pipe.execute()[0]
