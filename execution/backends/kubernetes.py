"""The Kubernetes execution backend: per version in use, a Deployment of runner pods (the
runner of execution/runner serving HTTP), a Service, a NetworkPolicy and the runner's spec
in a Secret, all through the official ``kubernetes`` client. Scaling is the same autoscaler
as the local backend's: replicas patched up on demand (from zero: a cold start), up while
calls queue, and back down to the reserved minimum (zero by default) after the idle time.
"""
import hashlib
import hmac
import json
import re
import threading
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.cache import cache
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from .base import Outcome, RunTarget

READY_MEMORY_SECONDS = 1.0  # how long is_cold trusts the ready pods this process last saw
_local_inflight: dict[str, dict[str, float]] = {}  # without Redis: name -> token -> until
_local_inflight_lock = threading.Lock()


def _inflight_key(name: str) -> str:
    return f"algostore:k8s:inflight:{name}"

RUNNER_LABEL = {"app.kubernetes.io/name": "algostore-runner"}
POOL_LABEL = "algostore.io/pool"
PLATFORM_WEB = {"app.kubernetes.io/name": "algostore", "app.kubernetes.io/component": "web"}
PLATFORM_WORKER = {"app.kubernetes.io/name": "algostore",
                   "app.kubernetes.io/component": "worker"}
RUNNER_UID = 10001
PRIVATE_NETWORKS = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                    "169.254.0.0/16", "127.0.0.0/8"]
RUNNER_PORT = 8080
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                      "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}

# The init container: fetch the build artifact from the platform and check its SHA-256
# before unpacking it (a pod never runs bytes the platform did not build).
FETCH_ARTIFACT = """
import hashlib, io, os, re, sys, tarfile, urllib.request
target = os.environ.get("ALGO_DIR", "/algo")
data = urllib.request.urlopen(os.environ["ARTIFACT_URL"], timeout=300).read()
if hashlib.sha256(data).hexdigest() != os.environ["ARTIFACT_SHA256"]:
    sys.exit("artifact checksum mismatch")
archive = tarfile.open(fileobj=io.BytesIO(data))
for member in archive.getmembers():
    # A virtualenv links to its interpreter by absolute path: that link, and links inside
    # the artifact, are all an artifact may hold; nothing else points out of the folder.
    interpreter = re.fullmatch(r"venv/bin/python[0-9.]*", member.name)
    if member.issym() and (member.linkname.startswith("/") and not interpreter
                           or ".." in member.linkname.split("/")):
        sys.exit("artifact link leaves the artifact: " + member.name)
    if member.islnk() or member.isdev():
        sys.exit("artifact holds a hard link or device: " + member.name)
archive.extractall(target, filter="tar")
"""


def pool_name(target: RunTarget) -> str:
    """A DNS-1123 name for the target's objects."""
    return "algo-" + re.sub(r"[^a-z0-9-]", "-", target.pool_key.lower())[:50].strip("-")


def artifact_signature(artifact_path: str, sha256: str) -> str:
    """Binds the URL to one artifact: its path and its content hash."""
    return hmac.new(settings.SECRET_KEY.encode(), f"artifact:{artifact_path}|{sha256}".encode(),
                    hashlib.sha256).hexdigest()


def platform_api() -> str:
    base = settings.EXECUTION_PLATFORM_API.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise RuntimeError("EXECUTION_PLATFORM_API must be the platform's internal address "
                           "(e.g. http://algostore-web.algostore.svc.cluster.local:8000) for "
                           "runner pods to fetch artifacts and reach the API.")
    return base


def _platform_host() -> tuple[str, str]:
    """The platform API's host name and the address it resolves to here (in the cluster):
    given to pods as a host alias, so isolated pods need no DNS."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    host = urlsplit(platform_api()).hostname or ""
    try:
        ipaddress.ip_address(host)
        return host, ""  # already an address
    except ValueError:
        pass
    try:
        return host, socket.gethostbyname(host)
    except OSError:
        return host, ""


def artifact_url(target: RunTarget) -> str:
    signature = artifact_signature(target.artifact_path, target.artifact_sha256)
    return (f"{platform_api()}/internal/artifacts/{target.artifact_sha256}"
            f"?path={target.artifact_path}&sig={signature}")


def runner_spec(target: RunTarget) -> dict:
    """What the runner in the pod reads (mounted from a Secret: it holds the algorithm's
    secrets)."""
    address_space = target.memory_bytes
    if target.language == "javascript":
        heap_mb = max(target.memory_bytes // (1024 * 1024) - 256, 128)
        command = ["node", f"--max-old-space-size={heap_mb}",
                   "/opt/algostore/runtime/node/runner.js", f"src/{target.entry}.js"]
        # V8 reserves far more address space than it uses (as on the local backend); the
        # pod's memory limit is what bounds it.
        address_space = max(target.memory_bytes, 64 * 1024 ** 3)
    else:
        command = ["/algo/venv/bin/python", f"src/{target.entry}.py"]
    env = {"PYTHONPATH": "/opt/algostore/runtime/python", **target.env}
    if target.bridge:
        env.update(ALGOSTORE_API_SOCKET="/tmp/.algostore-api.sock", ALGOSTORE_API_PORT="8081",
                   ALGORITHMIA_API="http://127.0.0.1:8081")
    return {"idle_seconds": 10 ** 9, "reserved": True,  # pods are scaled, they never retire
            "max_output_bytes": target.max_output_bytes,
            "bridge_socket": "/tmp/.algostore-api.sock" if target.bridge else None,
            "sandbox": {"artifact_dir": "/algo", "tmp_dir": "/tmp", "command": command,
                        "uid": RUNNER_UID, "network": target.network, "env": env,
                        "memory_bytes": address_space,
                        "max_processes": target.max_processes, "mode": "pod"}}


def render(target: RunTarget) -> list[dict]:
    """The version's objects: Secret (runner spec), Deployment, Service, NetworkPolicy."""
    name, namespace = pool_name(target), settings.EXECUTION_K8S_NAMESPACE
    labels = {**RUNNER_LABEL, POOL_LABEL: name}
    metadata = {"name": name, "namespace": namespace, "labels": labels}
    image = settings.EXECUTION_K8S_RUNNER_IMAGES[target.language]
    memory = f"{max(target.memory_bytes // (1024 * 1024), 128)}Mi"
    resources = {"requests": {"cpu": f"{target.cpu_millicores}m", "memory": memory},
                 "limits": {"cpu": f"{target.cpu_millicores}m", "memory": memory}}
    # The spec (with the algorithm's secrets) and the signed artifact URL: in a Secret, never
    # in the Deployment, which more people may read.
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque",
              "stringData": {"spec.json": json.dumps(runner_spec(target)),
                             "artifact-url": artifact_url(target)}}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {**metadata, "annotations": {
            "algostore.io/idle-seconds": str(target.idle_seconds),
            "algostore.io/min-warm": str(target.min_warm),
            "algostore.io/max-runners": str(target.max_runners)}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {POOL_LABEL: name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    # A scale-down lets the call in flight finish (the runner drains on
                    # SIGTERM); calls last at most the default timeout plus margin.
                    "terminationGracePeriodSeconds": settings.EXECUTION_DEFAULT_TIMEOUT + 30,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": RUNNER_UID,
                                        "runAsGroup": RUNNER_UID, "fsGroup": RUNNER_UID,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "initContainers": [{
                        "name": "fetch-artifact", "image": image,
                        "command": ["python3", "-c", FETCH_ARTIFACT],
                        "env": [{"name": "ARTIFACT_URL", "valueFrom": {"secretKeyRef": {
                                    "name": name, "key": "artifact-url"}}},
                                {"name": "ARTIFACT_SHA256", "value": target.artifact_sha256}],
                        "securityContext": CONTAINER_SECURITY, "resources": resources,
                        "volumeMounts": [{"name": "algo", "mountPath": "/algo"}]}],
                    "containers": [{
                        "name": "runner", "image": image,
                        "command": ["python3", "-m", "execution.runner.server",
                                    "/spec/spec.json", "--http", str(RUNNER_PORT)],
                        "ports": [{"name": "http", "containerPort": RUNNER_PORT}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                                           "periodSeconds": 1, "failureThreshold": 1},
                        "securityContext": CONTAINER_SECURITY, "resources": resources,
                        "volumeMounts": [
                            {"name": "algo", "mountPath": "/algo", "readOnly": True},
                            {"name": "tmp", "mountPath": "/tmp"},
                            {"name": "spec", "mountPath": "/spec", "readOnly": True}]}],
                    "volumes": [{"name": "algo", "emptyDir": {}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                                {"name": "spec", "secret": {"secretName": name, "items": [
                                    {"key": "spec.json", "path": "spec.json"}]}}],
                }}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": metadata,
               "spec": {"selector": {POOL_LABEL: name},
                        "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    platform_ns = {"kubernetes.io/metadata.name": settings.EXECUTION_K8S_PLATFORM_NAMESPACE}
    dns = {"to": [{"namespaceSelector": {},
                   "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
           "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    platform_api = {"to": [{"namespaceSelector": {"matchLabels": platform_ns},
                            "podSelector": {"matchLabels": PLATFORM_WEB}}],
                    "ports": [{"port": 8000, "protocol": "TCP"}]}
    # Full network access is the internet, never the cluster's own networks (the database,
    # the broker, the API server, node metadata).
    internet = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_NETWORKS}}]}
    policy = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata,
        "spec": {
            "podSelector": {"matchLabels": {POOL_LABEL: name}},
            "policyTypes": ["Ingress", "Egress"],
            # Only the platform's workers call the runner.
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": platform_ns},
                                   "podSelector": {"matchLabels": PLATFORM_WORKER}}],
                         "ports": [{"port": RUNNER_PORT, "protocol": "TCP"}]}],
            # Isolated: the platform's API only (its address is given to the pod, so not
            # even DNS is needed).
            "egress": [platform_api, dns, internet] if target.network else [platform_api],
        }}
    host, address = _platform_host()
    if address:
        deployment["spec"]["template"]["spec"]["hostAliases"] = [
            {"ip": address, "hostnames": [host]}]
    return [secret, deployment, service, policy]


class KubernetesBackend:
    def __init__(self, api_client: k8s.ApiClient | None = None):
        self.api = api_client or _api_client()
        self.apps, self.core = k8s.AppsV1Api(self.api), k8s.CoreV1Api(self.api)
        self.networking = k8s.NetworkingV1Api(self.api)
        self.namespace = settings.EXECUTION_K8S_NAMESPACE
        self._seen_ready: dict[str, tuple[float, int]] = {}

    # --- objects ----------------------------------------------------------------------------
    def ensure(self, target: RunTarget) -> str:
        """Create the version's objects, or bring them up to date (replicas are left as
        they are: they belong to the autoscaler)."""
        name, manifests = pool_name(target), render(target)
        digest = hashlib.sha256(json.dumps(manifests, sort_keys=True).encode()).hexdigest()
        marker = f"k8s:applied:{name}:{digest[:16]}"
        if cache.get(marker):
            return name
        for manifest in manifests:
            self._apply(manifest)
        cache.set(marker, 1, 300)
        return name

    def _apply(self, manifest: dict) -> None:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        create, patch = {
            "Secret": (self.core.create_namespaced_secret, self.core.patch_namespaced_secret),
            "Service": (self.core.create_namespaced_service,
                        self.core.patch_namespaced_service),
            "Deployment": (self.apps.create_namespaced_deployment,
                           self.apps.patch_namespaced_deployment),
            "NetworkPolicy": (self.networking.create_namespaced_network_policy,
                              self.networking.patch_namespaced_network_policy),
        }[kind]
        try:
            create(self.namespace, manifest)
        except ApiException as error:
            if error.status != 409:
                raise
            if kind == "Deployment":  # never reset the autoscaler's replicas
                manifest = {**manifest, "spec": {k: v for k, v in manifest["spec"].items()
                                                 if k != "replicas"}}
            patch(name, self.namespace, manifest)

    # --- scaling ----------------------------------------------------------------------------
    def replicas(self, name: str) -> int:
        scale = self.apps.read_namespaced_deployment_scale(name, self.namespace)
        return scale.spec.replicas or 0

    def scale(self, name: str, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(name, self.namespace,
                                                    {"spec": {"replicas": replicas}})

    def ready(self, name: str) -> int:
        return self._state(name)[1]

    def _state(self, name: str) -> tuple[int, int]:
        """The Deployment's wanted and ready replicas, in one read (remembered a moment, for
        ``is_cold``)."""
        deployment = self.apps.read_namespaced_deployment_status(name, self.namespace)
        spec, status = deployment.spec, deployment.status
        state = ((spec.replicas or 0) if spec else 0,
                 (status.ready_replicas or 0) if status else 0)
        self._seen_ready[name] = (time.monotonic(), state[1])
        return state

    def warm(self, target: RunTarget) -> None:
        """Start a runner pod without waiting (call-graph pre-warming); it counts as used,
        so the idle scaler leaves it for its idle time."""
        name = self.ensure(target)
        cache.set(f"k8s:last-used:{name}", time.time(), None)
        if self.replicas(name) == 0:
            self.scale(name, max(1, target.min_warm))

    def runner_count(self, target: RunTarget) -> int:
        try:
            return self.ready(pool_name(target))
        except ApiException:
            return 0

    def is_cold(self, target: RunTarget) -> bool:
        seen_at, ready = self._seen_ready.get(pool_name(target), (0.0, 0))
        if ready and time.monotonic() - seen_at < READY_MEMORY_SECONDS:
            return False  # ready pods seen a moment ago (by this process's last call)
        return self.runner_count(target) == 0

    def scale_idle(self) -> list[tuple[str, int]]:
        """Scale versions that had no call for their idle time back to their reserved
        minimum (zero unless the owner reserved some), and remove the objects of versions
        that stayed at zero for EXECUTION_K8S_GC_SECONDS (a new build, secret or setting is
        a new pool: the old one, its spec Secret included, must not linger). Returns what it
        changed: (name, replicas), with -1 for removed."""
        changed = []
        selector = ",".join(f"{k}={v}" for k, v in RUNNER_LABEL.items())
        for deployment in self.apps.list_namespaced_deployment(
                self.namespace, label_selector=selector).items:
            name = deployment.metadata.name
            notes = deployment.metadata.annotations or {}
            idle = float(notes.get("algostore.io/idle-seconds", 300))
            floor = int(notes.get("algostore.io/min-warm", 0))
            last = cache.get(f"k8s:last-used:{name}") or 0
            current = deployment.spec.replicas or 0
            busy = self._inflight(name) > 0
            if current > floor and time.time() - last >= idle and not busy:
                self.scale(name, floor)
                changed.append((name, floor))
            elif current == 0 and not busy and time.time() - last >= max(
                    idle, settings.EXECUTION_K8S_GC_SECONDS):
                self.remove(name)
                changed.append((name, -1))
        return changed

    def remove(self, name: str) -> None:
        for delete in (self.apps.delete_namespaced_deployment,
                       self.core.delete_namespaced_service,
                       self.networking.delete_namespaced_network_policy,
                       self.core.delete_namespaced_secret):
            try:
                delete(name, self.namespace)
            except ApiException as error:
                if error.status != 404:
                    raise
        cache.delete(f"k8s:last-used:{name}")

    # --- in-flight calls: one key per call, each expiring at the call's deadline, so a
    # worker that died mid-call cannot keep a version scaled up forever.
    def _enter(self, name: str, timeout: float) -> str:
        """Count a call in flight for the version (until it leaves, or its timeout and a
        margin pass: a worker that died does not count for ever). Atomic: calls entering
        together are all counted (a list read and written back lost some)."""
        token = f"{time.time_ns()}-{threading.get_ident()}"
        now = time.time()
        if settings.REDIS_URL:
            from marketplace.redis_client import redis_client

            key = _inflight_key(name)
            pipe = redis_client().pipeline()
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zadd(key, {token: now + timeout + 30})
            pipe.expire(key, int(timeout) + 60)
            pipe.execute()
        else:  # one process (embedded mode): its threads share this table
            with _local_inflight_lock:
                calls = _local_inflight.setdefault(name, {})
                for stale in [t for t, until in calls.items() if until <= now]:
                    del calls[stale]
                calls[token] = now + timeout + 30
        return token

    def _leave(self, name: str, token: str) -> None:
        if settings.REDIS_URL:
            from marketplace.redis_client import redis_client

            redis_client().zrem(_inflight_key(name), token)
        else:
            with _local_inflight_lock:
                _local_inflight.get(name, {}).pop(token, None)

    def _inflight(self, name: str) -> int:
        now = time.time()
        if settings.REDIS_URL:
            from marketplace.redis_client import redis_client

            return redis_client().zcount(_inflight_key(name), now, "+inf")
        with _local_inflight_lock:
            return sum(1 for until in _local_inflight.get(name, {}).values() if until > now)

    # --- calls ------------------------------------------------------------------------------
    def invoke(self, target: RunTarget, request: dict, timeout: float,
               context: dict | None = None, on_stdout=None) -> Outcome:
        started = time.monotonic()
        name = self.ensure(target)
        token = self._enter(name, timeout)
        cold_ms = 0.0
        try:
            current, ready = self._state(name)
            wanted = min(target.max_runners, max(self._inflight(name), target.min_warm, 1))
            if wanted > current:  # from zero (a cold start), or up while calls queue; never down
                self.scale(name, wanted)
            if ready == 0:
                cold_started = time.monotonic()
                self._wait_ready(name, started + timeout)
                cold_ms = (time.monotonic() - cold_started) * 1000
            queue_ms = (time.monotonic() - started) * 1000 - cold_ms
            reply = self._call(name, request, context or {}, started + timeout)
        finally:
            self._leave(name, token)
            cache.set(f"k8s:last-used:{name}", time.time(), None)
        return Outcome.from_reply(reply, cold_start_ms=cold_ms, queue_ms=queue_ms)

    def _wait_ready(self, name: str, deadline: float) -> None:
        deadline = min(deadline, time.monotonic() + settings.EXECUTION_K8S_READY_TIMEOUT)
        while time.monotonic() < deadline:
            if self.ready(name) > 0:
                return
            time.sleep(0.2)
        raise TimeoutError("No runner pod became ready before the call's timeout.")

    def _call(self, name: str, request: dict, context: dict, deadline: float) -> dict:
        """POST the call to the version's Service; a pod that is ready but not yet (or no
        longer) behind the Service refuses the connection: try again until the deadline."""
        url = settings.EXECUTION_K8S_SERVICE_URL.format(name=name, namespace=self.namespace)
        while True:
            remaining = max(deadline - time.monotonic(), 0.05)
            data = json.dumps({"request": request, "timeout": remaining,
                               "context": context}).encode()
            call = urllib.request.Request(f"{url}/call", data=data, method="POST",
                                          headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(call, timeout=remaining + 10) as response:
                    return json.loads(response.read())
            except urllib.error.URLError as error:
                refused = isinstance(getattr(error, "reason", None), ConnectionRefusedError)
                if not refused or time.monotonic() + 0.2 >= deadline:
                    raise
                time.sleep(0.2)


def _api_client() -> k8s.ApiClient:
    from kubernetes import config

    if settings.EXECUTION_K8S_API_HOST:
        configuration = k8s.Configuration()
        configuration.host = settings.EXECUTION_K8S_API_HOST
        return k8s.ApiClient(configuration)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return k8s.ApiClient()
