"""The JSON shapes of the management API, as the official clients read them (API.md)."""
from django.urls import reverse

from catalog.models import Algorithm, AlgorithmVersion, Build


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def details(algorithm: Algorithm) -> dict:
    return {"label": algorithm.label, "summary": algorithm.summary, "tagline": algorithm.tagline}


def settings_of(algorithm: Algorithm, version: AlgorithmVersion | None = None) -> dict:
    return {
        "language": algorithm.language,
        "algorithm_environment": algorithm.language,
        "source_visibility": algorithm.source_visibility,
        "license": algorithm.license,
        "royalty_microcredits": (version.royalty_microcredits if version
                                 else algorithm.royalty_microcredits),
        "algorithm_callability": version.callability if version else algorithm.callability,
        "network_access": algorithm.network_access,
        "pipeline_enabled": algorithm.pipeline_enabled,
        "categories": [c.slug for c in algorithm.categories.all()],
        "tags": [t.name for t in algorithm.tags.all()],
    }


# Sources live in the platform (bundles), not in an outside repository: the generated
# management client requires an `scm` object, so the internal one is named.
INTERNAL_SCM = {"id": "internal", "provider": "internal", "default": True, "enabled": True}


def build(build: Build) -> dict:
    """A build. ``version_info`` appears once the build is published: the generated
    management client (algorithmia-api-client) refuses a null semantic_version there."""
    version = getattr(build, "version", None)
    body = {
        "build_id": str(build.build_id),
        "status": build.status,
        "commit_sha": build.content_hash,
        "started_at": _iso(build.started_at or build.created_at),
        "finished_at": _iso(build.finished_at),
        "failure_reason": build.error_message or None,
        "resource_type": "build",
    }
    if version is not None:
        body["version_info"] = {"semantic_version": version.semantic_version}
    return body


def version(algorithm: Algorithm, build_obj: Build | None,
            version_obj: AlgorithmVersion | None = None, request=None) -> dict:
    """A version object; for an unpublished build (compile's answer) semantic_version is null."""
    path = reverse("api-algorithm", kwargs={"owner": algorithm.owner_name, "name": algorithm.name})
    return {
        "name": algorithm.name,
        "details": details(algorithm),
        "settings": settings_of(algorithm, version_obj),
        "source": {"scm": INTERNAL_SCM,
                   "content_hash": build_obj.content_hash if build_obj else None},
        "version_info": {
            "semantic_version": version_obj.semantic_version if version_obj else None,
            "git_hash": build_obj.content_hash if build_obj else None,
            "version_uuid": str(version_obj.version_uuid) if version_obj else None,
            "release_notes": version_obj.release_notes if version_obj else None,
            "sample_input": version_obj.sample_input if version_obj else None,
            "sample_output": version_obj.sample_output if version_obj else None,
            "published_at": _iso(version_obj.published_at) if version_obj else None,
        },
        "build": build(build_obj) if build_obj else None,
        "compilation": {
            "successful": bool(build_obj and build_obj.status == Build.Status.SUCCEEDED),
            "output": (build_obj.error_message or "") if build_obj else "",
        },
        "self_link": request.build_absolute_uri(path) if request else path,
        "resource_type": "algorithm",
    }


def algorithm(algorithm_obj: Algorithm, latest: AlgorithmVersion | None, request=None) -> dict:
    body = version(algorithm_obj, latest.build if latest else None, latest, request)
    body["id"] = str(algorithm_obj.uuid)
    body["owner"] = algorithm_obj.owner_name
    body["settings"] = settings_of(algorithm_obj)
    body["calls_30d"] = algorithm_obj.calls_30d
    return body


def listing(results: list, *, next_marker: str | None, request) -> dict:
    next_link = None
    if next_marker is not None:
        query = request.GET.copy()
        query["marker"] = next_marker
        next_link = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    return {"results": results, "marker": next_marker, "next_link": next_link}
