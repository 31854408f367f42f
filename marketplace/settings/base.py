"""Settings shared by every environment.

Everything comes from the environment through one ``env`` object (django-environ), with
embedded defaults that let a fresh clone run with nothing else installed: SQLite under
``var/``, Celery eager, an in-memory Channels layer, local file storage and the local
execution backend. Setting ``DATABASE_URL``, ``CELERY_BROKER_URL``, ``REDIS_URL`` or the S3
variables switches each part to its scaled-out form; no code path exists in only one mode.
"""
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
VAR_DIR = Path(env.str("ALGOSTORE_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "channels",
    "marketplace",
    "catalog",
    "execution",
    "billing",
    "datastore",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "marketplace.middleware.V1ErrorEnvelopeMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "marketplace.middleware.AuditContextMiddleware",
]

ROOT_URLCONF = "marketplace.urls"
WSGI_APPLICATION = "marketplace.wsgi.application"
ASGI_APPLICATION = "marketplace.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=0))
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
        "DATABASE_POOL", default=False):
    # Under ASGI, persistent connections leak; psycopg's pool reuses them safely instead.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2, "max_size": env.int("DATABASE_POOL_MAX", default=20), "timeout": 10}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
        "DATABASE_PREPARED", default=True):
    # The call path's few writes (marketplace.row_update) are prepared once per connection.
    # Django's own queries bind on the client and are never prepared. Off behind a pooler in
    # transaction mode that cannot carry prepared statements (PgBouncer before 1.21).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 2)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database that vanished without closing its connections (a host lost, a network
    # partition) fails a waiting statement within seconds, not when TCP gives up after
    # minutes: data sent and unacknowledged for 15 s, or an idle connection unanswered for
    # 30 s plus three probes. The web's event loop waits on its admissions' statements.
    DATABASES["default"]["OPTIONS"] = {
        "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 5, "keepalives_count": 3,
        "tcp_user_timeout": 15_000, **DATABASES["default"].get("OPTIONS", {})}  # yours first
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web tier read while a worker writes; the timeout rides out short locks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "marketplace.User"

# --- Cache and Channels -----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Each process keeps the caches' epochs as Redis pushes their bumps to it, rather than
# reading them on every call (marketplace/epoch_cache.py); off: read them every time.
EPOCH_WATCH = env.bool("EPOCH_WATCH", default=True)
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                    # A Redis that stops answering fails a cache read in seconds, not never.
                    "OPTIONS": {"socket_timeout": 5, "socket_connect_timeout": 5}}
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 gives up a read after 5 s by default, and channels_redis waits up
            # to 5 s for a message: a WebSocket with nothing to send for 5 s (a call that
            # prints nothing for a while) was dropped, and its failure logged as an error.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30,
                                  "socket_connect_timeout": 5, "socket_keepalive": True}]},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
# Without a broker every task runs eagerly, in-process: the embedded default.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL or None)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "catalog.*": {"queue": "builds"},
    "execution.*": {"queue": "execution"},
    "billing.*": {"queue": "billing"},
    "datastore.*": {"queue": "default"},
    "marketplace.*": {"queue": "default"},
}
CELERY_WORKER_QUEUES = ["default", "builds", "execution", "billing"]
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=3600)
# acks_late tasks are redelivered after this many seconds; it must exceed the longest run.
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT",
                                    default=CELERY_TASK_TIME_LIMIT + 600)
# How often a Redis-brokered worker looks for tasks a dead worker left unacknowledged
# (kombu scans every interval x throttle seconds; its defaults make that 100 s).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "unacked_restore_interval": env.int("CELERY_RESTORE_INTERVAL", default=10),
    "unacked_restore_throttle": env.int("CELERY_RESTORE_THROTTLE", default=10),
}
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A Redis that stops answering fails a send (5 s an attempt; Celery tries a publish
    # four times, reconnecting) rather than hanging it, and with it the web's event loop.
    CELERY_BROKER_TRANSPORT_OPTIONS.update(socket_timeout=5, socket_connect_timeout=5)
# Periodic housekeeping (run `celery -A marketplace beat` beside the workers).
CELERY_BEAT_SCHEDULE = {
    "reap-stuck-calls": {"task": "execution.reap_stuck", "schedule": 60.0},
    "settle-and-reconcile": {"task": "billing.reconcile", "schedule": 60.0},
    "expire-algorithm-temp-data": {"task": "datastore.expire_temp", "schedule": 3600.0},
    "scale-idle-runner-pods": {"task": "execution.scale_idle", "schedule": 15.0},
    "refresh-algorithm-popularity": {"task": "catalog.refresh_calls", "schedule": 300.0},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"

# --- Files ----------------------------------------------------------------------------
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]

AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    _file_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env.str("AWS_S3_REGION_NAME", default=None),
            "access_key": env.str("AWS_ACCESS_KEY_ID", default=None),
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default=None),
            "default_acl": None,
            "file_overwrite": False,
        },
    }
else:
    _file_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
STORAGES = {
    "default": _file_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Execution ------------------------------------------------------------------------
EXECUTION_BACKEND = env.str("EXECUTION_BACKEND", default="local")
if EXECUTION_BACKEND not in ("local", "kubernetes"):
    raise ImproperlyConfigured(
        f"EXECUTION_BACKEND must be 'local' or 'kubernetes', not {EXECUTION_BACKEND!r}."
    )

# --- Auth and accounts -----------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "home"
# How often, at most, a key's last_used_at is written (seconds): not on every request.
API_KEY_LAST_USED_RESOLUTION = env.int("API_KEY_LAST_USED_RESOLUTION", default=60)
# Behind a proxy that sets X-Forwarded-For, audit rows may take the client address from it.
AUDIT_TRUST_X_FORWARDED_FOR = env.bool("AUDIT_TRUST_X_FORWARDED_FOR", default=False)

# --- API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["marketplace.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "marketplace.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_RATES": {
        "key_create": env.str("THROTTLE_KEY_CREATE", default="30/hour"),
    },
}
# Request bodies bigger than this are refused with 413 (the invocation API has its own limit).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging: one line per record; keys and secrets never reach these records. ----------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- Catalog: bundles and builds ---------------------------------------------------------
# Bundles and build artifacts live in their own named storage entry: a folder under var/
# locally, a prefix of the same bucket on S3.
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["sources"] = {
        "BACKEND": _file_storage["BACKEND"],
        "OPTIONS": {**_file_storage["OPTIONS"], "location": "sources"},
    }
else:
    STORAGES["sources"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env.str("SOURCES_ROOT", default=str(VAR_DIR / "sources"))},
    }
BUNDLE_MAX_BYTES = env.int("BUNDLE_MAX_BYTES", default=50 * 1024 * 1024)
BUNDLE_MAX_FILES = env.int("BUNDLE_MAX_FILES", default=5000)
BUNDLE_MAX_UNPACKED_BYTES = env.int("BUNDLE_MAX_UNPACKED_BYTES", default=200 * 1024 * 1024)
BUILD_TIMEOUT_SECONDS = env.int("BUILD_TIMEOUT_SECONDS", default=600)
BUILD_ROOT = Path(env.str("BUILD_ROOT", default=str(VAR_DIR / "builds")))
# Shared by every build: pip's HTTP cache, a wheelhouse, npm's cache.
BUILD_CACHE_DIR = Path(env.str("BUILD_CACHE_DIR", default=str(VAR_DIR / "cache")))

# --- Execution ---------------------------------------------------------------------------
EXECUTION_ARTIFACT_DIR = Path(env.str("EXECUTION_ARTIFACT_DIR", default=str(VAR_DIR / "artifacts")))
EXECUTION_RUN_DIR = Path(env.str("EXECUTION_RUN_DIR", default=str(VAR_DIR / "run")))
EXECUTION_MAX_RUNNERS_PER_VERSION = env.int("EXECUTION_MAX_RUNNERS_PER_VERSION", default=4)
EXECUTION_MEMORY_BYTES = env.int("EXECUTION_MEMORY_BYTES", default=2 * 1024 ** 3)
EXECUTION_MAX_PROCESSES = env.int("EXECUTION_MAX_PROCESSES", default=64)
EXECUTION_REQUEST_MAX_BYTES = env.int("EXECUTION_REQUEST_MAX_BYTES", default=10 * 1024 * 1024)
EXECUTION_RESPONSE_MAX_BYTES = env.int("EXECUTION_RESPONSE_MAX_BYTES", default=15 * 1024 * 1024)
EXECUTION_DEFAULT_TIMEOUT = 300
EXECUTION_MAX_TIMEOUT = 3000
# Invocation bodies go beyond Django's default form limit; the API enforces its own limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(DATA_UPLOAD_MAX_MEMORY_SIZE, EXECUTION_REQUEST_MAX_BYTES + 1024)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=6)
WEBHOOK_BACKOFF_SECONDS = env.int("WEBHOOK_BACKOFF_SECONDS", default=5)
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=False)
# Callbacks to loopback, private, link-local or reserved addresses (development only: in
# production they would let callers make the platform POST inside its own networks).
WEBHOOK_ALLOW_PRIVATE_HOSTS = env.bool("WEBHOOK_ALLOW_PRIVATE_HOSTS", default=False)
# Encrypts algorithm secrets at rest (derived from SECRET_KEY when unset).
SECRETS_ENCRYPTION_KEY = env.str("SECRETS_ENCRYPTION_KEY", default="")
# How sync calls get their result back: "redis-list" (the worker pushes the envelope, the
# web request BLPOPs it over a process-wide pool) when Redis is configured, else "celery"
# (the Celery result backend, whose per-thread clients reconnect on every request).
EXECUTION_RESULT_CHANNEL = env.str("EXECUTION_RESULT_CHANNEL",
                                   default="redis-list" if REDIS_URL else "celery")
# Under ASGI, sync calls with an API key skip Django's request cycle (execution.asgi).
EXECUTION_FAST_PATH = env.bool("EXECUTION_FAST_PATH", default=True)
# Its admission (key check, hold, send) runs on the event loop's own thread, on a pooled
# connection the loop keeps (with short lock and statement limits), instead of a hop to a
# worker thread and back (a tenth of a call's CPU); with this off, in a worker thread.
EXECUTION_ADMIT_ON_LOOP = env.bool("EXECUTION_ADMIT_ON_LOOP", default=True)
# A sync call admitted on the loop while its web process waits on no other call is sent to
# its worker before its admission is written; the worker runs it once told it was
# (execution.early_dispatch), waiting for that word at most EXECUTION_EARLY_WAIT_SECONDS.
EXECUTION_EARLY_DISPATCH = env.bool("EXECUTION_EARLY_DISPATCH", default=True)
EXECUTION_EARLY_WAIT_SECONDS = env.float("EXECUTION_EARLY_WAIT_SECONDS", default=5.0)
# A sync call's waiting caller gets its answer as soon as the worker has it, and the call
# is closed (billed, its hold released) right after; with this off, the close is written
# first. The call's record and the caller's balance then trail its answer by the close's
# one statement. Never for a call whose hold, held that moment longer, could refuse its
# payer's next call (a key's cap, or less than two more such holds left besides it when
# it was admitted): execution.services._answer_first.
EXECUTION_ANSWER_BEFORE_CLOSE = env.bool("EXECUTION_ANSWER_BEFORE_CLOSE", default=True)
# The platform API as runners should reach it for composition (e.g. an internal service
# address); empty: the address of the socket the web process took each call on (never the
# request's Host header). Set it when the web tier listens on a unix socket.
EXECUTION_PLATFORM_API = env.str("EXECUTION_PLATFORM_API", default="")
# The Celery queue invocations are sent to.
EXECUTION_QUEUE = env.str("EXECUTION_QUEUE", default="execution")
# How many worker slots an execution worker's composing calls may lend at once to the calls
# they make while they wait on them (execution/capacity.py).
EXECUTION_MAX_LENT_SLOTS = env.int("EXECUTION_MAX_LENT_SLOTS", default=256)
# Embedded (no broker): output=void calls run on this many threads of the web process.
EXECUTION_EMBEDDED_THREADS = env.int("EXECUTION_EMBEDDED_THREADS", default=4)
# Embedded (no broker): builds run on those threads too, so starting one answers at once
# and its page streams the log live (make run turns it on); off, a build runs within the
# request that starts it (the suite's embedded pass relies on that).
EMBEDDED_BUILDS_IN_BACKGROUND = env.bool("EMBEDDED_BUILDS_IN_BACKGROUND", default=False)

# --- billing ------------------------------------------------------------------------------
# Microcredits (1 credit = 1,000,000); 10,000 credits per US dollar.
BILLING_SIGNUP_GRANT = env.int("BILLING_SIGNUP_GRANT", default=10_000 * 1_000_000)
# Compute: microcredits per second of one core (default 1 credit), billed by the millisecond.
BILLING_COMPUTE_RATE = env.int("BILLING_COMPUTE_RATE", default=1_000_000)
BILLING_CORES_PER_RUNNER = env.int("BILLING_CORES_PER_RUNNER", default=1)
BILLING_AUTHOR_SHARE_PERCENT = 70
# The call path's writes on PostgreSQL (a call's row and hold when admitted and closed, and
# the settlement batches) commit without waiting for the disk: a crash of the database
# server can lose the last moments of them, whole (a lost call is reaped unbilled, a lost
# batch settled again). Top-ups, refunds, payouts and everything else always wait.
CALL_WRITES_WAIT_FOR_DISK = env.bool("CALL_WRITES_WAIT_FOR_DISK", default=False)
# Finished calls are written to the ledger in batches, this long after the first of them.
BILLING_SETTLE_DELAY_SECONDS = env.float("BILLING_SETTLE_DELAY_SECONDS", default=0.25)
# Credit packs: name -> (US cents, credits).
BILLING_PACKS = {"starter": (1_000, 100_000), "builder": (5_000, 500_000),
                 "studio": (10_000, 1_000_000)}
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# Where the stripe library sends API calls (tests point it at a local stand-in).
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")

# --- Data API -----------------------------------------------------------------------------
# Hosted collections live in their own named storage entry: a folder under var/ locally, a
# prefix of the same bucket on S3.
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["data"] = {
        "BACKEND": _file_storage["BACKEND"],
        "OPTIONS": {**_file_storage["OPTIONS"], "location": "data"},
    }
else:
    STORAGES["data"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env.str("DATA_ROOT", default=str(VAR_DIR / "data"))},
    }
DATA_MAX_FILE_BYTES = env.int("DATA_MAX_FILE_BYTES", default=5 * 1024 ** 3)
DATA_QUOTA_BYTES = env.int("DATA_QUOTA_BYTES", default=50 * 1024 ** 3)
DATA_LIST_PAGE_SIZE = env.int("DATA_LIST_PAGE_SIZE", default=1000)
# Hosts a connector's endpoint_url may name although they are not public addresses (e.g. a
# MinIO on the private network). Empty: public addresses only.
DATA_CONNECTOR_ALLOWED_HOSTS = env.list("DATA_CONNECTOR_ALLOWED_HOSTS", default=[])

# --- Kubernetes execution backend (EXECUTION_BACKEND=kubernetes) ---------------------------
EXECUTION_K8S_NAMESPACE = env.str("EXECUTION_K8S_NAMESPACE", default="algostore-runners")
EXECUTION_K8S_PLATFORM_NAMESPACE = env.str("EXECUTION_K8S_PLATFORM_NAMESPACE",
                                           default="algostore")
EXECUTION_K8S_RUNNER_IMAGES = {
    "python3-1": env.str("EXECUTION_K8S_PYTHON_IMAGE",
                         default="ghcr.io/algostore/runner-python:latest"),
    "javascript": env.str("EXECUTION_K8S_NODE_IMAGE",
                          default="ghcr.io/algostore/runner-node:latest"),
}
# How the workers reach a version's runner Service ({name}, {namespace}).
EXECUTION_K8S_SERVICE_URL = env.str("EXECUTION_K8S_SERVICE_URL",
                                    default="http://{name}.{namespace}.svc.cluster.local")
# The Kubernetes API: in-cluster config, else KUBECONFIG; this overrides both (tests).
EXECUTION_K8S_API_HOST = env.str("EXECUTION_K8S_API_HOST", default="")
EXECUTION_K8S_READY_TIMEOUT = env.float("EXECUTION_K8S_READY_TIMEOUT", default=120.0)
# A version's runner objects are removed after this long at zero replicas without calls.
EXECUTION_K8S_GC_SECONDS = env.int("EXECUTION_K8S_GC_SECONDS", default=24 * 3600)
