"""Settings for the test suite: embedded defaults unless the environment names services."""
from .base import *  # noqa: F401,F403
from .base import env

DEBUG = False
SECRET_KEY = "test-only-secret-key-that-is-long-enough-for-django-checks"
# Hashing passwords slowly is a production concern; tests make many users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
API_KEY_LAST_USED_RESOLUTION = env.int("API_KEY_LAST_USED_RESOLUTION", default=60)
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}
# Tests serve static files from the finders; nothing is collected.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Bundles, artifacts and build scratch space of the tests stay apart from `make run`'s
# (the shared wheel cache is kept: it only makes builds faster).
STORAGES["sources"] = {  # noqa: F405
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {"location": str(VAR_DIR / "test" / "sources")},  # noqa: F405
}
STORAGES["data"] = {  # noqa: F405
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {"location": str(VAR_DIR / "test" / "data")},  # noqa: F405
}
BUILD_ROOT = VAR_DIR / "test" / "builds"  # noqa: F405
MEDIA_ROOT = VAR_DIR / "test" / "media"  # noqa: F405
EXECUTION_RUN_DIR = VAR_DIR / "test" / "run"  # noqa: F405
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, as make run's (WAL, a busy timeout), not Django's in-memory test database:
    # there, threads share one cache whose table locks fail at once ("database table is
    # locked") where a file's wait, and embedded calls run on threads of their own.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test" / "db.sqlite3")}  # noqa: F405
    # SQLite creates the file but not its folder, which a fresh clone does not have yet.
    (VAR_DIR / "test").mkdir(parents=True, exist_ok=True)  # noqa: F405
EXECUTION_ARTIFACT_DIR = VAR_DIR / "test" / "artifacts"  # noqa: F405
WEBHOOK_ALLOW_HTTP = True  # the tests' receivers listen on http://127.0.0.1
WEBHOOK_ALLOW_PRIVATE_HOSTS = True
WEBHOOK_BACKOFF_SECONDS = 0
WEBHOOK_MAX_ATTEMPTS = 3
DATA_CONNECTOR_ALLOWED_HOSTS = ["127.0.0.1"]  # the tests' S3 server (moto) runs here
