"""The Kubernetes execution backend: what it renders (validated against the Kubernetes API
schema, offline), and what it asks of the API through the official client, against a local
stand-in of the API server that records every request."""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import kubernetes_validate
import pytest
from django.core.cache import cache

from execution.backends.base import RunTarget
from execution.backends.kubernetes import KubernetesBackend, pool_name, render

K8S_VERSION = "1.30.0"


@pytest.fixture(autouse=True)
def _platform_address(settings):
    settings.EXECUTION_PLATFORM_API = "http://10.96.0.10:8000"  # the web Service's address


def target(**overrides) -> RunTarget:
    fields = dict(pool_key="abcdef0123456789abcd", artifact_dir=Path("/unused"),
                  language="python3-1", entry="hello", idle_seconds=60, min_warm=0,
                  max_runners=4, memory_bytes=512 * 1024 ** 2,
                  artifact_path="artifacts/abc.tar.gz", artifact_sha256="f" * 64)
    return RunTarget(**{**fields, **overrides})


@pytest.mark.parametrize("network", [False, True])
def test_rendered_objects_validate_against_the_kubernetes_schema(network):
    for manifest in render(target(network=network)):
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_runner_pods_are_locked_down():
    secret, deployment, service, policy = render(target())
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"] + pod["initContainers"]:
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
        assert container["resources"]["limits"] == {"cpu": "1000m", "memory": "512Mi"}
    runner = pod["containers"][0]
    assert runner["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"name": "algo", "mountPath": "/algo", "readOnly": True} in runner["volumeMounts"]
    fetch = pod["initContainers"][0]
    env = {item["name"]: item for item in fetch["env"]}
    assert env["ARTIFACT_SHA256"]["value"] == "f" * 64
    # The signed URL (and the spec, with the algorithm's secrets) only in the Secret.
    assert env["ARTIFACT_URL"]["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"][
        "name"], "key": "artifact-url"}
    assert "sig=" in secret["stringData"]["artifact-url"]
    assert "sig=" not in json.dumps(deployment)
    assert json.loads(secret["stringData"]["spec.json"])["sandbox"]["mode"] == "pod"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_an_isolated_algorithms_policy_denies_all_egress_but_the_platform_api():
    policy = render(target(network=False))[3]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert len(policy["egress"]) == 1  # not even DNS: the platform's address is given
    rule = policy["egress"][0]
    assert rule["to"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "algostore", "app.kubernetes.io/component": "web"}
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    full = render(target(network=True))[3]["spec"]["egress"]
    internet = full[-1]["to"][0]["ipBlock"]
    assert internet["cidr"] == "0.0.0.0/0"  # the internet, but never the cluster's networks
    assert {"10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12"} <= set(internet["except"])


def test_pods_get_the_platforms_address_as_a_host_alias(settings):
    settings.EXECUTION_PLATFORM_API = "http://localhost:8000"
    pod = render(target())[1]["spec"]["template"]["spec"]
    assert pod["hostAliases"] == [{"ip": "127.0.0.1", "hostnames": ["localhost"]}]
    settings.EXECUTION_PLATFORM_API = ""
    with pytest.raises(RuntimeError, match="EXECUTION_PLATFORM_API"):
        render(target())


def test_the_artifact_fetch_unpacks_a_real_build_and_refuses_a_tampered_one(tmp_path, probe):
    """FETCH_ARTIFACT, as the init container runs it, on the artifact the builder made."""
    import hashlib
    import subprocess
    import sys

    from django.core.files.storage import storages

    from execution.backends.kubernetes import FETCH_ARTIFACT

    build = probe.builds.get(status="succeeded")
    data = storages["sources"].open(build.artifact_path, "rb").read()
    (tmp_path / "a.tar.gz").write_bytes(data)
    env = {**os.environ, "ARTIFACT_URL": (tmp_path / "a.tar.gz").as_uri(),
           "ARTIFACT_SHA256": hashlib.sha256(data).hexdigest(), "ALGO_DIR": str(tmp_path / "algo")}
    done = subprocess.run([sys.executable, "-c", FETCH_ARTIFACT], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "algo" / "source" / "src" / "probe.py").exists()
    assert os.path.islink(tmp_path / "algo" / "venv" / "bin" / "python")
    bad = subprocess.run([sys.executable, "-c", FETCH_ARTIFACT], capture_output=True, text=True,
                         env={**env, "ARTIFACT_SHA256": "0" * 64,
                              "ALGO_DIR": str(tmp_path / "other")}, timeout=120)
    assert bad.returncode != 0 and "checksum mismatch" in bad.stderr
    assert not (tmp_path / "other").exists()


class FakeKubernetes:
    """Answers the few API calls the backend makes, keeps the objects, and records every
    request; it also stands in for the runner Service (POST /call)."""

    def __init__(self):
        self.requests, self.objects, self.replicas = [], {}, {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _body(self):
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"null")

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802
                body = self._body()
                fake.requests.append(("POST", self.path, body))
                if self.path.endswith("/call"):
                    self._send(200, {"response": {"result": "hi from the pod",
                                                  "metadata": {"content_type": "text"}},
                                     "error_type": None, "stdout": "", "duration_ms": 1.5})
                    return
                name = body["metadata"]["name"]
                key = (self.path, name)
                if key in fake.objects:
                    self._send(409, {"kind": "Status", "code": 409, "reason": "AlreadyExists"})
                    return
                fake.objects[key] = body
                if body["kind"] == "Deployment":
                    fake.replicas[name] = body["spec"].get("replicas", 1)
                self._send(201, body)

            def do_PATCH(self):  # noqa: N802
                body = self._body()
                fake.requests.append(("PATCH", self.path, body))
                if not self.path.endswith("/scale"):  # an object brought up to date
                    self._send(200, body)
                    return
                name = self.path.split("/deployments/")[1].split("/")[0]
                fake.replicas[name] = body["spec"]["replicas"]
                self._send(200, {"kind": "Scale", "apiVersion": "autoscaling/v1",
                                 "metadata": {"name": name},
                                 "spec": {"replicas": fake.replicas[name]}})

            def do_GET(self):  # noqa: N802
                fake.requests.append(("GET", self.path, None))
                path = self.path.split("?")[0]
                if path.endswith("/deployments"):
                    items = []
                    for (_, name), body in fake.objects.items():
                        if body["kind"] == "Deployment":
                            items.append({**body, "spec": {**body["spec"],
                                                           "replicas": fake.replicas[name]}})
                    self._send(200, {"kind": "DeploymentList", "apiVersion": "apps/v1",
                                     "metadata": {}, "items": items})
                    return
                name = path.split("/deployments/")[1].split("/")[0]
                if path.endswith("/scale"):
                    self._send(200, {"kind": "Scale", "apiVersion": "autoscaling/v1",
                                     "metadata": {"name": name},
                                     "spec": {"replicas": fake.replicas[name]}})
                else:  # /status: pods are ready as soon as they are asked for
                    stored = next(body for (_, n), body in fake.objects.items() if n == name
                                  and body["kind"] == "Deployment")
                    self._send(200, {**stored, "spec": {**stored["spec"],
                                                        "replicas": fake.replicas[name]},
                                     "status": {"readyReplicas": fake.replicas[name]}})

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def scale_patches(self):
        return [(path.rsplit("/", 2)[-2], body) for method, path, body in self.requests
                if method == "PATCH" and path.endswith("/scale")]


@pytest.fixture
def fake_k8s(settings):
    fake = FakeKubernetes()
    settings.EXECUTION_K8S_API_HOST = fake.url
    settings.EXECUTION_K8S_SERVICE_URL = fake.url + "/services/{namespace}/{name}"
    settings.EXECUTION_K8S_NAMESPACE = "runners"
    cache.clear()
    yield fake
    fake.server.shutdown()


def test_scale_from_zero_call_idle_and_back_to_zero(fake_k8s):
    backend = KubernetesBackend()
    version = target(idle_seconds=0)
    name = pool_name(version)
    outcome = backend.invoke(version, {"content_type": "text", "data": "hi"}, timeout=10)
    assert outcome.response["result"] == "hi from the pod"
    created = [(path.rsplit("/", 1)[-1], body["kind"]) for method, path, body
               in fake_k8s.requests if method == "POST" and not path.endswith("/call")]
    assert created == [("secrets", "Secret"), ("deployments", "Deployment"),
                       ("services", "Service"), ("networkpolicies", "NetworkPolicy")]
    assert fake_k8s.scale_patches() == [(name, {"spec": {"replicas": 1}})]
    call = [body for method, path, body in fake_k8s.requests if path.endswith("/call")][0]
    assert call["request"] == {"content_type": "text", "data": "hi"}
    assert all(path.startswith(("/api/v1/namespaces/runners/",
                                "/apis/apps/v1/namespaces/runners/",
                                "/apis/networking.k8s.io/v1/namespaces/runners/",
                                "/services/runners/"))
               for _, path, _ in fake_k8s.requests)

    # Idle for its idle time: back to zero, through the same client.
    assert backend.scale_idle() == [(name, 0)]
    assert fake_k8s.scale_patches() == [(name, {"spec": {"replicas": 1}}),
                                        (name, {"spec": {"replicas": 0}})]
    # And up again on the next call.
    backend.invoke(version, {"content_type": "text", "data": "again"}, timeout=10)
    assert fake_k8s.scale_patches()[-1] == (name, {"spec": {"replicas": 1}})


def test_each_process_makes_its_backend_once_per_configuration(fake_k8s, settings):
    from execution.backends import get_backend
    from execution.backends.local import LocalBackend

    settings.EXECUTION_BACKEND = "kubernetes"
    first = get_backend()
    assert isinstance(first, KubernetesBackend) and get_backend() is first
    settings.EXECUTION_K8S_NAMESPACE = "elsewhere"
    moved = get_backend()
    assert moved is not first and moved.namespace == "elsewhere" and get_backend() is moved
    settings.EXECUTION_BACKEND = "local"
    local = get_backend()
    assert isinstance(local, LocalBackend) and get_backend() is local


def test_a_warm_call_reads_the_cluster_once(fake_k8s):
    backend = KubernetesBackend()
    version = target()
    backend.invoke(version, {"content_type": "text", "data": "cold"}, timeout=10)
    before = len(fake_k8s.requests)
    assert backend.is_cold(version) is False  # the pods the call just saw: no read
    outcome = backend.invoke(version, {"content_type": "text", "data": "warm"}, timeout=10)
    assert outcome.response["result"] == "hi from the pod"
    made = [(method, path.split("?")[0].rsplit("/", 1)[-1])
            for method, path, _ in fake_k8s.requests[before:]]
    assert made == [("GET", "status"), ("POST", "call")]


def test_calls_entering_together_are_all_counted_in_flight(fake_k8s):
    """The count that scales a version up while calls queue: 24 calls entering at once are
    24 in flight, and none once they have left."""
    from concurrent.futures import ThreadPoolExecutor

    backend = KubernetesBackend()
    name = f"inflight-{time.time_ns()}"
    with ThreadPoolExecutor(24) as pool:
        tokens = list(pool.map(lambda _: backend._enter(name, 30), range(24)))
    assert len(set(tokens)) == 24 and backend._inflight(name) == 24
    with ThreadPoolExecutor(24) as pool:
        list(pool.map(lambda token: backend._leave(name, token), tokens))
    assert backend._inflight(name) == 0
    gone = backend._enter(name, -31)  # a call whose time (and margin) is up counts no more
    assert backend._inflight(name) == 0
    backend._leave(name, gone)


def test_reserved_runners_are_never_scaled_below_their_minimum(fake_k8s):
    backend = KubernetesBackend()
    version = target(idle_seconds=0, min_warm=2)
    backend.invoke(version, {"content_type": "text", "data": "hi"}, timeout=10)
    assert fake_k8s.scale_patches() == [(pool_name(version), {"spec": {"replicas": 2}})]
    assert backend.scale_idle() == []  # already at its reserved minimum


def test_objects_are_updated_not_duplicated_and_replicas_left_to_the_autoscaler(fake_k8s):
    backend = KubernetesBackend()
    version = target()
    backend.ensure(version)
    cache.clear()  # another worker process, which has not applied them yet
    backend.ensure(version)
    patches = [(path, body) for method, path, body in fake_k8s.requests if method == "PATCH"]
    kinds = [body["kind"] for _, body in patches]
    assert kinds == ["Secret", "Deployment", "Service", "NetworkPolicy"]
    deployment_patch = patches[1][1]
    assert "replicas" not in deployment_patch["spec"]


@pytest.mark.skipif(not os.environ.get("KUBECONFIG"),
                    reason="needs a cluster: set KUBECONFIG to run the live cycle")
def test_live_cluster_publish_call_and_scale_to_zero(settings):
    """On a real cluster (KUBECONFIG): render, apply, start from zero, then scale to zero.
    (It needs EXECUTION_PLATFORM_API reachable from the cluster's pods to fetch artifacts.)"""
    settings.EXECUTION_K8S_API_HOST = ""
    backend = KubernetesBackend()
    version = target(idle_seconds=0)
    backend.ensure(version)
    backend.warm(version)
    backend._wait_ready(pool_name(version), __import__("time").monotonic() + 300)
    assert backend.runner_count(version) >= 1
    backend.scale_idle()
    assert backend.replicas(pool_name(version)) == 0


SLOW_FAKE = """
import json, sys, time
print("PIPE_INIT_COMPLETE", flush=True)
for line in sys.stdin:
    data = json.loads(line)["data"]
    if data == "slow":
        time.sleep(1.5)
    print("line 0", flush=True)
    with open(sys.argv[1], "w") as fifo:
        fifo.write(json.dumps({"result": data, "metadata": {"content_type": "text"}}) + "\\n")
"""


def _pod_runner(tmp_path, script: str):
    """Start the runner as a pod runs it (HTTP, pod mode) hosting a trusted stand-in."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    (tmp_path / "algo" / "source").mkdir(parents=True)
    (tmp_path / "algo" / "source" / "fake.py").write_text(script)
    (tmp_path / "tmp").mkdir()
    spec = {"idle_seconds": 10 ** 9, "reserved": True, "max_output_bytes": 1 << 20,
            "sandbox": {"artifact_dir": str(tmp_path / "algo"), "tmp_dir": str(tmp_path / "tmp"),
                        "command": [sys.executable, "fake.py", str(tmp_path / "tmp" / "algoout")],
                        "uid": 10001, "mode": "pod"}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner = subprocess.Popen([sys.executable, "-m", "execution.runner.server",
                               str(tmp_path / "spec.json"), "--http", str(port)],
                              cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as ok:
                assert ok.status == 200
                return runner, port
        except OSError:
            assert time.monotonic() < deadline and runner.poll() is None
            time.sleep(0.1)


def _pod_call(port: int, data: str) -> dict:
    import urllib.request

    call = urllib.request.Request(
        f"http://127.0.0.1:{port}/call", method="POST",
        data=json.dumps({"request": {"content_type": "text", "data": data},
                         "timeout": 10}).encode())
    with urllib.request.urlopen(call, timeout=20) as response:
        return json.loads(response.read())


def test_the_runner_serves_http_in_pod_mode(tmp_path):
    """What a runner pod runs: the same runner program, over HTTP, the algorithm started as it
    is (the pod is the sandbox). A trusted stand-in algorithm speaks the protocol."""
    from tests.execution.test_runner_process import FAKE

    runner, port = _pod_runner(tmp_path, FAKE)
    try:
        reply = _pod_call(port, "from a pod")
        assert reply["response"]["result"] == "from a pod"
        assert reply["stdout"] == "line 0\nline 1\nline 2\n"
    finally:
        runner.terminate()
        runner.wait(timeout=10)


def test_a_pod_whose_algorithm_fails_to_load_is_ready_and_answers_calls_with_the_error(
        tmp_path):
    """Ready (so calls reach it, rather than a pod that never becomes ready), and every call
    answered with the author's load error."""
    import urllib.request

    broken = "import sys\nprint('no model file at /algo/model.bin', flush=True)\nsys.exit(3)\n"
    runner, port = _pod_runner(tmp_path, broken)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as ready:
            assert (ready.status, json.loads(ready.read())) == (200, {"state": "failed"})
        replies = [_pod_call(port, "one"), _pod_call(port, "two")]
    finally:
        runner.terminate()
        runner.wait(timeout=10)
    for reply in replies:
        assert (reply["response"], reply["error_type"]) == (None, "LoadingError")
        assert reply["error_message"].startswith("The algorithm failed to load: ")
        assert "no model file at /algo/model.bin" in reply["error_message"]


def test_a_scaled_down_pod_finishes_its_call_before_it_exits(tmp_path):
    import signal
    import time
    from concurrent.futures import ThreadPoolExecutor

    runner, port = _pod_runner(tmp_path, SLOW_FAKE)
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(_pod_call, port, "slow")
        time.sleep(0.5)  # the call is in flight
        runner.send_signal(signal.SIGTERM)  # what Kubernetes does on a scale-down
        assert call.result(timeout=20)["response"]["result"] == "slow"
    assert runner.wait(timeout=10) == 0


@pytest.mark.django_db
def test_runner_pods_fetch_artifacts_by_signed_url_only():
    from django.core.files.base import ContentFile
    from django.test import Client

    client = Client()
    from django.core.files.storage import storages

    from execution.backends.kubernetes import artifact_signature

    path = storages["sources"].save("artifacts/k8s-test.tar.gz", ContentFile(b"artifact bytes"))
    try:
        sha = "0" * 64
        url = f"/internal/artifacts/{sha}?path={path}"
        good = client.get(f"{url}&sig={artifact_signature(path, sha)}")
        assert good.status_code == 200 and b"".join(good.streaming_content) == b"artifact bytes"
        assert client.get(f"{url}&sig={'0' * 64}").status_code == 404
        # A signature is for one artifact: not another path, not another hash.
        signed = artifact_signature("artifacts/another.tar.gz", sha)
        assert client.get(f"{url}&sig={signed}").status_code == 404
        assert client.get(f"/internal/artifacts/{'1' * 64}?path={path}"
                          f"&sig={artifact_signature(path, sha)}").status_code == 404
        other = "artifacts/../secret.txt"
        assert client.get(f"/internal/artifacts/{sha}?path={other}"
                          f"&sig={artifact_signature(other, sha)}").status_code == 404
    finally:
        storages["sources"].delete(path)
