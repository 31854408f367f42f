"""Settings: embedded defaults, and production that refuses to start without its secret."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE_VARS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")


def manage(*args, **env) -> subprocess.CompletedProcess:
    dropped = SERVICE_VARS + ("SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE", "DJANGO_SETTINGS_MODULE")
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**base, **env}, timeout=120)


PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "marketplace.settings.production",
    "SECRET_KEY": "p" * 20 + "R4nd0m-enough-for-the-deploy-check-0123456789abcdef",
    "DJANGO_ALLOWED_HOSTS": "algostore.example.com",
}


def test_production_settings_pass_check_deploy():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = manage("check", **env)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_embedded_defaults_need_no_services():
    code = ("from django.conf import settings as s;"
            "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER,"
            " s.CHANNEL_LAYERS['default']['BACKEND'], s.STORAGES['default']['BACKEND'],"
            " s.EXECUTION_BACKEND)")
    result = manage("shell", "-v", "0", "-c", code, DJANGO_SETTINGS_MODULE="marketplace.settings.local")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3", "True", "channels.layers.InMemoryChannelLayer",
        "django.core.files.storage.FileSystemStorage", "local"]


def test_services_are_chosen_by_the_environment():
    code = ("from django.conf import settings as s;"
            "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER,"
            " s.CHANNEL_LAYERS['default']['BACKEND'], s.STORAGES['default']['BACKEND'])")
    result = manage("shell", "-v", "0", "-c", code, DJANGO_SETTINGS_MODULE="marketplace.settings.local",
                    DATABASE_URL="postgres://u@db.invalid:5432/x", REDIS_URL="redis://r.invalid/0",
                    CELERY_BROKER_URL="redis://r.invalid/1", AWS_STORAGE_BUCKET_NAME="bucket")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.postgresql", "False", "channels_redis.core.RedisChannelLayer",
        "storages.backends.s3.S3Storage"]


def test_an_unknown_execution_backend_is_a_clear_error():
    result = manage("check", DJANGO_SETTINGS_MODULE="marketplace.settings.local",
                    EXECUTION_BACKEND="docker")
    assert result.returncode != 0
    assert "EXECUTION_BACKEND must be 'local' or 'kubernetes'" in result.stderr
