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


def rpush_expiring(key: str, values: list, seconds: float) -> int:
    """Append to a list that expires ``seconds`` from now (one round trip); its new length."""
    pipe = redis_client().pipeline(transaction=False)
    pipe.rpush(key, *values)
    pipe.expire(key, int(seconds))
    return pipe.execute()[0]
