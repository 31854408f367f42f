"""The bubblewrap sandbox an algorithm runs in (local backend).

New PID, IPC, UTS, mount (and user, when not started by root) and, unless the algorithm
has full network access, network namespaces; the build artifact read-only at /algo; a private, empty /tmp holding only the FIFO;
a clean environment; an unprivileged uid of its own, so that the process limit counts only
this sandbox's processes. The platform's code, database, settings and other algorithms' files
are simply not in its filesystem. Standard library only.
"""
import os
import resource
import shutil
import sys
from dataclasses import dataclass, field

# System paths an interpreter needs, bound read-only when present.
SYSTEM_PATHS = ["/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc/ssl", "/etc/ca-certificates",
                "/etc/alternatives", "/etc/ld.so.cache", "/etc/localtime", "/usr/share/zoneinfo"]


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing: untrusted code is never run without it."""


@dataclass
class SandboxSpec:
    artifact_dir: str            # holds source/ and venv/ (Python) or source/ (Node.js)
    tmp_dir: str                 # becomes /tmp: the FIFO lives here
    command: list[str]           # run inside, from /algo/source
    uid: int                     # an unprivileged uid for this sandbox alone
    network: bool = False        # full network access (the algorithm's setting)
    env: dict = field(default_factory=dict)
    memory_bytes: int = 2 * 1024 ** 3
    max_processes: int = 64
    cpu_seconds: int = 3600
    max_file_bytes: int = 256 * 1024 * 1024
    extra_ro_binds: list[tuple[str, str]] = field(default_factory=list)
    socket_binds: list[tuple[str, str]] = field(default_factory=list)
    # "bwrap" on an execution host; "pod" in a Kubernetes runner pod, whose security
    # context, read-only root, NetworkPolicy and limits are the sandbox.
    mode: str = "bwrap"


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed: the local execution backend refuses to run "
            "algorithms without it. Install the Debian package `bubblewrap`.")
    return path


def interpreter_roots() -> list[str]:
    """Where the base Python lives (it may be outside /usr, e.g. under pyenv)."""
    roots = {os.path.realpath(sys.base_prefix)}
    return [r for r in roots if not r.startswith("/usr")]


class _Binds:
    def __init__(self) -> None:
        self.args: list[str] = []
        self.made: set[str] = set()

    def add(self, source: str, target: str, *, writable: bool = False) -> None:
        self._parents(target)
        self.args += ["--bind" if writable else "--ro-bind", source, target]

    def symlink(self, link_to: str, target: str) -> None:
        self._parents(target)
        self.args += ["--symlink", link_to, target]

    def _parents(self, target: str) -> None:
        # Folders bwrap creates on the way to a mount point must be searchable by the
        # algorithm's uid (e.g. /root/.pyenv/versions for an interpreter there).
        parent = os.path.dirname(target.rstrip("/"))
        ancestors = []
        while parent not in ("", "/") and parent not in self.made:
            ancestors.append(parent)
            parent = os.path.dirname(parent)
        for folder in reversed(ancestors):
            self.args += ["--perms", "0755", "--dir", folder]
            self.made.add(folder)


def drop_privileges(uid: int) -> list[str]:
    """Run the algorithm as ``uid`` with no capabilities and no way to regain any."""
    return ["/usr/bin/setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def command(spec: SandboxSpec) -> tuple[list[str], list[int]]:
    """The bwrap command line (and descriptors to inherit: none today).

    bwrap is started by the runner, which may be root (to bind what the algorithm's uid
    cannot reach, such as an interpreter under /root); the algorithm itself runs as the
    sandbox's own unprivileged uid, where the process limit applies. In a pod the command
    runs as it is (the pod is the sandbox)."""
    if spec.mode == "pod":
        return list(spec.command), []
    binds = _Binds()
    args = [bwrap_path(), "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--hostname", "algorithm", "--proc", "/proc", "--dev", "/dev"]
    if os.getuid() != 0:
        args += ["--unshare-user", "--uid", str(spec.uid), "--gid", str(spec.uid)]
    if not spec.network:
        args.append("--unshare-net")
    for path in SYSTEM_PATHS:
        if os.path.lexists(path):
            if os.path.islink(path):
                binds.symlink(os.readlink(path), path)
            else:
                binds.add(path, path)
    if spec.network:
        for path in ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf"):
            if os.path.exists(path):
                binds.add(path, path)
    for root in interpreter_roots():
        binds.add(root, root)
    for source, target in spec.extra_ro_binds:
        binds.add(source, target)
    for source, target in spec.socket_binds:
        binds.add(source, target, writable=True)
    binds.add(spec.artifact_dir, "/algo")
    binds.add(spec.tmp_dir, "/tmp", writable=True)
    args += binds.args + ["--chdir", "/algo/source"]
    inner = drop_privileges(spec.uid) if os.getuid() == 0 else []
    return args + ["--"] + inner + spec.command, []


def environment(spec: SandboxSpec) -> dict[str, str]:
    """The algorithm's whole environment. It is handed to bwrap as its own environment
    (which the algorithm inherits), never on a command line, where any local user could
    read it (secrets are in it)."""
    env = {"PATH": "/algo/venv/bin:/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp",
           "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "TMPDIR": "/tmp", **spec.env}
    return {name: str(value) for name, value in env.items()}


def limits_preexec(spec: SandboxSpec):
    """Resource limits, applied to bwrap and inherited by everything inside (the process
    limit binds once setpriv has dropped to the sandbox's own, non-root uid)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (spec.memory_bytes, spec.memory_bytes))
        if spec.mode != "pod":
            # Per-uid and per-process-lifetime limits fit a sandbox uid of its own; in a pod
            # (one shared uid across the node, long-lived processes) the pod's PID and CPU
            # limits do this instead.
            resource.setrlimit(resource.RLIMIT_NPROC, (spec.max_processes, spec.max_processes))
            resource.setrlimit(resource.RLIMIT_CPU, (spec.cpu_seconds, spec.cpu_seconds))
        resource.setrlimit(resource.RLIMIT_FSIZE, (spec.max_file_bytes, spec.max_file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply
