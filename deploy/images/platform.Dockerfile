# The platform image: web (gunicorn + uvicorn), Celery workers and beat, migrations.
# Build from the repository root: docker build -f deploy/images/platform.Dockerfile .
FROM python:3.11-slim-bookworm
# PYTHONPATH: the project importable from the console scripts too (Celery imports the
# execution workers' pool, execution.pool, before it loads the app).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=marketplace.settings.production
# bubblewrap for the local backend's sandbox (unused when EXECUTION_BACKEND=kubernetes);
# Node.js and npm for building JavaScript algorithms (the builders run this image).
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap nodejs npm \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin algostore
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY manage.py ./
COPY marketplace marketplace
COPY catalog catalog
COPY execution execution
COPY billing billing
COPY datastore datastore
COPY templates templates
COPY static static
COPY deploy/gunicorn.conf.py deploy/gunicorn.conf.py
COPY docs docs
RUN SECRET_KEY=collectstatic-only DJANGO_ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput --verbosity 0
USER 10001
EXPOSE 8000
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "marketplace.asgi:application"]
