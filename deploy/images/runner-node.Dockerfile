# The Node.js runner: the same runner program (Python, standard library only) hosting a
# JavaScript algorithm through the Node.js runtime pack.
# Build from the repository root: docker build -f deploy/images/runner-node.Dockerfile .
FROM node:20-bookworm-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/opt/algostore
RUN apt-get update && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin runner
COPY execution/__init__.py /opt/algostore/execution/__init__.py
COPY execution/runner /opt/algostore/execution/runner
COPY execution/runtimes/node /opt/algostore/runtime/node
USER 10001
EXPOSE 8080
CMD ["python3", "-m", "execution.runner.server", "/spec/spec.json", "--http", "8080"]
