"""Settings for `make run` and development: the embedded defaults, a development secret."""
from .base import *  # noqa: F401,F403
from .base import env

# Off unless asked for (DJANGO_DEBUG=true): the store make run serves answers as deployed,
# not with Django's technical pages (every URL pattern on a 404, settings on a 500).
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# A development-only key: production.py refuses to start without a real one.
SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-not-for-production-use-000")
# make run: a build started from the pages answers at once and its log streams live.
EMBEDDED_BUILDS_IN_BACKGROUND = env.bool("EMBEDDED_BUILDS_IN_BACKGROUND", default=True)
