"""deploy/: the platform's manifests, as `kubectl kustomize` renders them, validate against the
Kubernetes API schema (offline), run nothing as root, and give the execution backend only
what it needs; the images are non-root."""
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S_VERSION = "1.30.0"


@pytest.fixture(scope="module")
def documents() -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is needed to render deploy/kubernetes (`make test` on a machine "
                    "like CI's has it).")
    rendered = subprocess.run([kubectl, "kustomize", str(ROOT / "deploy" / "kubernetes")],
                              capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def test_every_rendered_object_validates(documents):
    kinds = sorted(doc["kind"] for doc in documents)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Deployment", "Deployment",
                     "Deployment", "Job",
                     "Namespace", "Namespace", "Role", "RoleBinding", "Service", "ServiceAccount"]
    for doc in documents:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_pod_runs_locked_down(documents):
    pods = [doc["spec"]["template"]["spec"] for doc in documents
            if doc["kind"] in ("Deployment", "Job")]
    assert len(pods) == 6
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert set(container["resources"]) == {"requests", "limits"}


def test_the_execution_backends_rights_are_exactly_what_its_code_calls(documents):
    import re

    role = next(doc for doc in documents if doc["kind"] == "Role")
    assert role["metadata"]["namespace"] == "algostore-runners"
    granted = {(rule["apiGroups"][0], resource, verb) for rule in role["rules"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    code = (ROOT / "execution" / "backends" / "kubernetes.py").read_text()
    calls = set(re.findall(r"\.(\w+)_namespaced_(\w+?)(?:_(scale|status))?\(", code)) | set(
        re.findall(r"self\.\w+\.(\w+)_namespaced_(\w+?)(?:_(scale|status))?[,)]", code))
    groups = {"deployment": "apps", "service": "", "secret": "", "network_policy":
              "networking.k8s.io"}
    verbs = {"create": "create", "patch": "patch", "read": "get", "list": "list",
             "delete": "delete"}
    plural = {"deployment": "deployments", "service": "services", "secret": "secrets",
              "network_policy": "networkpolicies"}
    needed = {(groups[kind], plural[kind] + (f"/{sub}" if sub else ""), verbs[verb])
              for verb, kind, sub in calls}
    assert granted == needed
    binding = next(doc for doc in documents if doc["kind"] == "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "algostore-execution",
                                    "namespace": "algostore"}]
    workers = [doc for doc in documents if doc["kind"] == "Deployment"
               and doc["spec"]["template"]["spec"].get("serviceAccountName")]
    assert [doc["metadata"]["name"] for doc in workers] == ["algostore-worker"]


def test_every_queue_has_workers_and_calls_have_theirs_to_themselves(documents):
    """Every queue a task is routed to is consumed, and the execution workers take calls
    only: settlement in the same process would hold its interpreter lock while calls
    close."""
    from django.conf import settings

    consumed = {}
    for doc in documents:
        if doc["kind"] == "Deployment":
            command = doc["spec"]["template"]["spec"]["containers"][0]["command"]
            if command[:3] == ["celery", "-A", "marketplace"] and command[3] == "worker":
                consumed[doc["metadata"]["name"]] = set(command[command.index("-Q") + 1]
                                                        .split(","))
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed | {settings.CELERY_TASK_DEFAULT_QUEUE} <= set().union(*consumed.values())
    assert consumed["algostore-worker"] == {"execution"}


def test_the_configuration_lets_pods_reach_the_platform_inside_the_cluster(documents):
    from urllib.parse import urlsplit

    config = next(doc for doc in documents if doc["kind"] == "ConfigMap")["data"]
    internal = urlsplit(config["EXECUTION_PLATFORM_API"]).hostname
    assert internal in config["DJANGO_ALLOWED_HOSTS"].split(",")
    assert config["DJANGO_SECURE_SSL_REDIRECT"] == "false"  # plain http inside; TLS at ingress
    assert config["ALGOSTORE_VAR_DIR"].startswith("/tmp/")  # writable: an emptyDir
    web = next(doc for doc in documents if doc["metadata"]["name"] == "algostore-web"
               and doc["kind"] == "Deployment")
    container = web["spec"]["template"]["spec"]["containers"][0]
    probe_host = container["readinessProbe"]["httpGet"]["httpHeaders"][0]["value"]
    assert probe_host in config["DJANGO_ALLOWED_HOSTS"].split(",")
    assert {"name": "WEB_CONCURRENCY", "value": "3"} in container["env"]
    service = next(doc for doc in documents if doc["kind"] == "Service")
    assert service["spec"]["selector"] == {"app.kubernetes.io/component": "web"}
    assert web["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "web"


@pytest.mark.parametrize("image", ["platform", "runner-python", "runner-node"])
def test_images_run_as_a_non_root_user(image):
    dockerfile = (ROOT / "deploy" / "images" / f"{image}.Dockerfile").read_text()
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and users[-1] == "10001"


def test_the_execution_workers_run_the_pool_their_calls_can_lend_slots_from(documents):
    """Composing calls lend their thread while they wait on their children (execution/
    capacity.py); only the execution pool can lend, and the worker must be started on it."""
    from celery.concurrency import get_implementation

    worker = next(doc for doc in documents if doc["kind"] == "Deployment"
                  and doc["metadata"]["name"] == "algostore-worker")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[command.index("-P") + 1] == "custom"
    env = {item["name"]: item["value"] for item in container.get("env", [])}
    from execution.pool import TaskPool

    assert get_implementation(env["CELERY_CUSTOM_WORKER_POOL"]) is TaskPool
