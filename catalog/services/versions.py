"""Publishing: the newest successful build becomes the next semantic version."""
from django.db import transaction

from catalog import semver
from catalog.models import Algorithm, AlgorithmVersion, Build
from marketplace.errors import InputError
from marketplace.models import User
from marketplace.services import audit_record


@transaction.atomic
def version_publish(*, algorithm: Algorithm, actor: User, version_type: str,
                    release_notes: str = "", sample_input: str = "", sample_output: str = "",
                    callability: str | None = None,
                    royalty_microcredits: int | None = None) -> AlgorithmVersion:
    """Publish the newest successful build as the next version, freezing its royalty."""
    algorithm = Algorithm.objects.select_for_update().get(pk=algorithm.pk)
    build = (algorithm.builds.filter(status=Build.Status.SUCCEEDED)
             .order_by("-created_at", "-id").first())
    if build is None:
        raise InputError("There is no successful build to publish: compile the algorithm first.")
    if AlgorithmVersion.objects.filter(build=build).exists():
        raise InputError(f"The newest successful build ({build.content_hash[:12]}) is already "
                         f"published as {build.version.semantic_version}; build new source first.")
    last = algorithm.versions.order_by("-major", "-minor", "-patch").first()
    callability = callability or algorithm.callability
    if callability not in Algorithm.Callability.values:
        raise InputError("algorithm_callability must be public or private.")
    if last and callability != last.callability and version_type != "major":
        raise InputError(f"Changing callability from {last.callability} to {callability} "
                         "needs a major version.")
    royalty = algorithm.royalty_microcredits if royalty_microcredits is None else royalty_microcredits
    if royalty < 0:
        raise InputError("royalty_microcredits cannot be negative.")
    major, minor, patch = semver.bump(
        (last.major, last.minor, last.patch) if last else None, version_type)
    version = AlgorithmVersion.objects.create(
        algorithm=algorithm, major=major, minor=minor, patch=patch, build=build,
        callability=callability, royalty_microcredits=royalty, release_notes=release_notes,
        sample_input=sample_input, sample_output=sample_output, published_by=actor)
    Algorithm.objects.filter(pk=algorithm.pk).update(callability=callability,
                                                     royalty_microcredits=royalty)
    audit_record(action="algorithm.publish", actor=actor, target=algorithm,
                 organization=algorithm.owner_org,
                 data={"version": version.semantic_version, "build": build.content_hash,
                       "callability": callability, "royalty_microcredits": royalty})
    return version
