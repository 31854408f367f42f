"""The build itself, run by a worker on the ``builds`` queue (catalog.tasks.build_run).

No untrusted code runs here. Python requirements must be plain requirement specifiers and
are fetched as wheels only (``--only-binary=:all:``, so no ``setup.py`` ever runs), then
installed offline into the algorithm's own virtualenv; npm dependencies are installed with
``--ignore-scripts``. Tools run with a clean environment: no platform secret reaches them.
Every line goes to the build's log, which streams live to the browser.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.files import File
from django.db.models import Q
from django.utils import timezone
from packaging.requirements import InvalidRequirement, Requirement

from catalog import bundles
from catalog.models import Build
from catalog.services.sources import sources_storage


class BuildError(Exception):
    """A build failure caused by the algorithm's source: shown to its author as is."""


def build_group(build: Build) -> str:
    return f"build_{build.build_id.hex}"


def _redact(line: str) -> str:
    """Authors see their build's log, not the platform's file layout."""
    for path, name in ((settings.BUILD_ROOT, "$BUILD_ROOT"), (settings.BUILD_CACHE_DIR, "$CACHE"),
                       (settings.BASE_DIR, "$PLATFORM"), (sys.base_prefix, "$PYTHON")):
        line = line.replace(str(path), name)
    return line


class BuildLog:
    """Collects a build's log; saves it and pushes new lines to watchers twice a second."""

    FLUSH_SECONDS = 0.5

    def __init__(self, build: Build):
        self.build = build
        self.text = build.logs
        self.pending = ""
        self.flushed_at = 0.0

    def write(self, line: str) -> None:
        line = _redact(line.rstrip("\n"))
        self.text += line + "\n"
        self.pending += line + "\n"
        if time.monotonic() - self.flushed_at >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self, status: str | None = None) -> None:
        Build.objects.filter(pk=self.build.pk).update(logs=self.text)
        if self.pending or status:
            async_to_sync(get_channel_layer().group_send)(build_group(self.build), {
                "type": "build.log", "text": self.pending,
                "status": status or Build.Status.IN_PROGRESS})
        self.pending, self.flushed_at = "", time.monotonic()


def _clean_env(home: Path) -> dict:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "LANG": "C.UTF-8", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    for name in ("PIP_CONFIG_FILE", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def run_logged(command: list[str], *, log: BuildLog, cwd: Path, deadline: float) -> None:
    """Run a tool, streaming its output into the log; BuildError on failure or timeout."""
    log.write("$ " + " ".join(command))
    process = subprocess.Popen(command, cwd=cwd, env=_clean_env(cwd), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    last_error = ""
    try:
        for line in process.stdout:
            log.write(line)
            if not last_error and line.startswith(("ERROR:", "npm ERR!", "npm error")) and not (
                    "complete log of this run" in line
                    or line.startswith(("npm ERR! code ", "npm error code "))):
                last_error = _redact(line.strip())  # pip's or npm's own first reason
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(command, settings.BUILD_TIMEOUT_SECONDS)
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()
        raise BuildError(f"The build took longer than {settings.BUILD_TIMEOUT_SECONDS} s.") from None
    if process.returncode != 0:
        tool = [Path(command[0]).name, *command[1:]]
        if len(tool) > 2 and tool[1] == "-m":  # python -m pip download: "pip download"
            tool = tool[2:]
        raise BuildError(f"`{' '.join(tool[:2])}` failed with exit code {process.returncode}"
                         + (f": {last_error[:500]}" if last_error else "."))


def clean_requirements(text: str) -> list[str]:
    """Plain requirement specifiers only: no options, URLs, paths or includes."""
    kept = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-") or "://" in line or line.startswith((".", "/", "~")):
            raise BuildError(f"requirements.txt line {number}: '{line}' is not allowed; list "
                             "packages as name[extras] and version specifiers only.")
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            raise BuildError(f"requirements.txt line {number}: {error}") from None
        if requirement.url:
            raise BuildError(f"requirements.txt line {number}: direct references are not allowed.")
        kept.append(str(requirement))
    return kept


def base_python() -> str:
    """The interpreter algorithms run on: the base Python, never the platform's virtualenv."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidate = Path(sys.base_prefix) / "bin" / version
    return str(candidate if candidate.exists() else Path(sys.base_prefix) / "bin" / "python3")


def build_python(work: Path, log: BuildLog, deadline: float) -> None:
    requirements_file = work / "source" / "requirements.txt"
    requirements = clean_requirements(
        requirements_file.read_text(errors="replace") if requirements_file.exists() else "")
    python = base_python()
    run_logged([python, "-m", "venv", "--without-pip", str(work / "venv")], log=log, cwd=work,
               deadline=deadline)
    if not requirements:
        log.write("No requirements to install.")
        return
    (work / "requirements.clean.txt").write_text("\n".join(requirements) + "\n")
    wheelhouse = settings.BUILD_CACHE_DIR / "wheels"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    wheels_only = ["-r", str(work / "requirements.clean.txt"), "--only-binary=:all:",
                   "--progress-bar", "off", "--cache-dir", str(settings.BUILD_CACHE_DIR / "pip")]
    download = pip + ["download", "--dest", str(wheelhouse), "--find-links", str(wheelhouse)]
    log.write("Collecting wheels (shared wheelhouse first, then the package index)…")
    try:
        run_logged(download + ["--no-index"] + wheels_only, log=log, cwd=work, deadline=deadline)
    except BuildError:
        log.write("Not every wheel is in the shared wheelhouse yet; asking the package index.")
        run_logged(download + wheels_only, log=log, cwd=work, deadline=deadline)
    run_logged(pip + ["--python", str(work / "venv" / "bin" / "python"), "install",
                      "--no-index", "--find-links", str(wheelhouse)] + wheels_only,
               log=log, cwd=work, deadline=deadline)


# npm takes settings from a .npmrc beside package.json (a registry, a proxy, scripts'
# shell), and what to fetch from package.json and its lockfile: in a bundle all of it is
# the author's, and npm runs on the build machine, outside any sandbox. A bundled .npmrc
# sent the build's requests to a service on the platform's host; a "file:" dependency
# would copy the host's files into the artifact. Only packages from the registry, by name
# and version range (or dist-tag), are installed.
NPM_IGNORED_FILES = (".npmrc", "package-lock.json", "npm-shrinkwrap.json", ".yarnrc",
                     ".yarnrc.yml", "yarn.lock")
NPM_SPEC = re.compile(r"^[\w.^~<>=|*+ -]*$")
NPM_DEPENDENCY_FIELDS = ("dependencies", "optionalDependencies", "peerDependencies",
                         "devDependencies", "overrides")


def npm_inputs_checked(source: Path, log: BuildLog) -> None:
    """Drop the bundle's npm settings and lockfiles; refuse a dependency that is not a
    version range of a registry package (file:, link:, git, URLs, aliases) and workspaces."""
    for name in NPM_IGNORED_FILES:
        if (source / name).is_file():
            (source / name).unlink()
            log.write(f"Ignoring the bundle's {name}: npm's settings and sources are the "
                      "platform's.")
    try:
        manifest = json.loads((source / "package.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise BuildError(f"package.json is not valid JSON: {error}.") from None
    if not isinstance(manifest, dict):
        raise BuildError("package.json must be a JSON object.")
    if manifest.get("workspaces"):
        raise BuildError("package.json: workspaces are not supported; bundle one package.")

    def check(field: str, dependencies, trail: str = "") -> None:
        if not isinstance(dependencies, dict):
            raise BuildError(f"package.json: {field} must be an object.")
        for name, spec in dependencies.items():
            if isinstance(spec, dict) and field == "overrides":
                check(field, spec, f"{trail}{name} > ")
            elif not isinstance(spec, str) or not NPM_SPEC.match(spec) or spec.startswith("."):
                # ("." and ".." are a folder to npm: the build's own work folder.)
                raise BuildError(
                    f"package.json: {field} \"{trail}{name}\": {json.dumps(spec)} is not "
                    "allowed: give a version range of a package on the npm registry (no "
                    "file:, link:, git or URL dependencies, no aliases).")

    for field in NPM_DEPENDENCY_FIELDS:
        if manifest.get(field) is not None:
            check(field, manifest[field])


def entry_syntax_checked(source: Path, name: str, log: BuildLog) -> None:
    """The entry module ``src/<name>.py`` parses (compiled, never run): a syntax error fails
    the build with its line, rather than the first call with a LoadingError."""
    entry = source / "src" / f"{name}.py"
    if not entry.is_file():
        return  # bundles.inspect has already said what the bundle must hold
    try:
        compile(entry.read_bytes(), f"src/{name}.py", "exec", dont_inherit=True)
    except SyntaxError as error:  # IndentationError and TabError too
        raise BuildError(f"src/{name}.py line {error.lineno}: {error.msg}.") from None
    except (ValueError, MemoryError, RecursionError) as error:  # NUL bytes, absurd nesting
        raise BuildError(f"src/{name}.py cannot be compiled: {error}.") from None
    log.write(f"src/{name}.py compiles.")


def build_javascript(work: Path, log: BuildLog, deadline: float) -> None:
    if not (work / "source" / "package.json").exists():
        log.write("No package.json: nothing to install.")
        return
    npm_inputs_checked(work / "source", log)
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("npm is not installed on the build machine.")
    run_logged([npm, "install", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund",
                "--cache", str(settings.BUILD_CACHE_DIR / "npm")], log=log, cwd=work / "source",
               deadline=deadline)


BUILDERS = {"python3-1": build_python, "javascript": build_javascript}


def _store_artifact(work: Path, build: Build) -> tuple[str, str]:
    """``source/`` (the bundle: the algorithm's working directory) and ``venv/``, as tar.gz."""
    archive = work / "artifact.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for part in ("source", "venv"):
            if (work / part).exists():
                tar.add(work / part, arcname=part)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    storage = sources_storage()
    name = f"artifacts/{build.content_hash}.tar.gz"
    if storage.exists(name):
        storage.delete(name)
    with open(archive, "rb") as handle:
        path = storage.save(name, File(handle))
    return path, digest


def _reusable(build: Build) -> tuple[str, str, Build | None] | None:
    """An artifact of the same content, if one is stored: artifacts are content-addressed,
    so a stored ``artifacts/<hash>.tar.gz`` is exactly what this build would make."""
    storage = sources_storage()
    earlier = (Build.objects.filter(content_hash=build.content_hash, language=build.language,
                                    status=Build.Status.SUCCEEDED)
               .exclude(Q(pk=build.pk) | Q(artifact_path="")).order_by("-finished_at").first())
    if earlier and storage.exists(earlier.artifact_path):
        return earlier.artifact_path, earlier.artifact_sha256, earlier
    path = f"artifacts/{build.content_hash}.tar.gz"
    if storage.exists(path):
        digest = hashlib.sha256()
        with storage.open(path, "rb") as stored:
            for chunk in iter(lambda: stored.read(1 << 20), b""):
                digest.update(chunk)
        return path, digest.hexdigest(), None
    return None


def _finish(build: Build, log: BuildLog, status: str, **fields) -> None:
    log.flush()
    Build.objects.filter(pk=build.pk).update(status=status, finished_at=timezone.now(),
                                             logs=log.text, **fields)
    log.flush(status=status)


def build_run(build_pk: int) -> str:
    """Run one build to the end; a build that is no longer in progress is left alone."""
    build = Build.objects.select_related("algorithm", "bundle").get(pk=build_pk)
    if build.status != Build.Status.IN_PROGRESS:
        return build.status
    Build.objects.filter(pk=build.pk).update(started_at=timezone.now())
    log = BuildLog(build)
    log.write(f"Building {build.algorithm.path} ({build.language}), content {build.content_hash[:12]}")
    reused = _reusable(build)
    if reused is not None:
        path, digest, earlier = reused
        log.write(f"Same content as {'build ' + str(earlier.build_id) if earlier else 'a stored artifact'}"
                  ": reusing its artifact.")
        _finish(build, log, Build.Status.SUCCEEDED, artifact_path=path, artifact_sha256=digest,
                reused_from=earlier)
        return Build.Status.SUCCEEDED
    deadline = time.monotonic() + settings.BUILD_TIMEOUT_SECONDS
    settings.BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=settings.BUILD_ROOT) as tmp:
            work = Path(tmp)
            with sources_storage().open(build.bundle.storage_path, "rb") as stored:
                spool = tempfile.TemporaryFile()
                shutil.copyfileobj(stored, spool)
            with spool:
                spool.seek(0)
                info = bundles.inspect(spool, build.bundle.archive_format, language=build.language,
                                       algorithm_name=build.algorithm.name)
                bundles.extract(spool, info, work / "source")
            log.write(f"Unpacked {len(info.files)} files.")
            if build.language == "python3-1":
                entry_syntax_checked(work / "source", build.algorithm.name, log)
            BUILDERS[build.language](work, log, deadline)
            path, digest = _store_artifact(work, build)
        log.write(f"Stored the artifact ({digest[:12]}).")
        _finish(build, log, Build.Status.SUCCEEDED, artifact_path=path, artifact_sha256=digest)
        return Build.Status.SUCCEEDED
    except BuildError as error:
        log.write(f"Build failed: {error}")
        _finish(build, log, Build.Status.FAILED, error_message=str(error)[:500])
    except Exception as error:  # the platform's fault: say so, keep the details in the log
        log.write(f"Build failed: internal error ({type(error).__name__}).")
        _finish(build, log, Build.Status.FAILED, error_message="Internal build error.")
        raise
    return Build.Status.FAILED
