# The Python runner: hosts one algorithm process in a pod (the pod is its sandbox).
# Builds must use the same Python (3.11 at /usr/local/bin) so their virtualenvs run here.
# Build from the repository root: docker build -f deploy/images/runner-python.Dockerfile .
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/opt/algostore
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin runner
# The runner is standard library only: its package, and the runtime pack, nothing else.
COPY execution/__init__.py /opt/algostore/execution/__init__.py
COPY execution/runner /opt/algostore/execution/runner
COPY execution/runtimes/python /opt/algostore/runtime/python
USER 10001
EXPOSE 8080
CMD ["python3", "-m", "execution.runner.server", "/spec/spec.json", "--http", "8080"]
