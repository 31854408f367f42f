"""The management API (``/v1/algorithms/...``) and search (``/v1/search``).

Writes need a key with the manage scope; an organization's key manages only that
organization's algorithms. Reads of public things need no key; private things are 404.
"""
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import payloads, selectors, services
from catalog.models import Algorithm, Build
from catalog.services.algorithms import normalize_language
from marketplace.errors import (ApplicationError, InputError, NotFoundError,
                               PermissionDeniedError)

UPLOAD_TYPES = {"application/gzip", "application/x-gzip", "application/x-tar+gzip",
                "application/zip", "application/x-zip-compressed", "application/octet-stream"}


class UnsupportedBundleType(ApplicationError):
    status_code, error_type = 415, "InputError"


def manager(request, owner: str | None = None):
    """The acting user, after checking the key may manage algorithms (of ``owner``)."""
    key = request.auth
    if key is None:
        raise PermissionDeniedError("An API key is needed.")
    if not key.can_manage:
        raise PermissionDeniedError("This key lacks the manage scope.")
    if owner and key.organization_id and key.organization.name.lower() != owner.lower():
        raise PermissionDeniedError(f"This key belongs to {key.organization.name} and cannot "
                                    f"manage {owner}'s algorithms.")
    return request.user


def reader(request):
    """Who reads the catalog: the signed-in person, or a key's user when the key may manage
    algorithms. A key without the manage scope (one made only to call, an algorithm's
    short-lived key for its own calls) reads what everyone can: it never lists or shows its
    user's private algorithms, builds or versions."""
    if not request.user.is_authenticated:
        return None
    key = request.auth
    if key is not None and not getattr(key, "can_manage", True):
        return None
    return request.user


def managed(request, owner: str, name: str) -> Algorithm:
    """The algorithm, for a read only its managers may make (its builds and their logs):
    404 unless the caller can see it at all, then 403 without the manage scope."""
    selectors.algorithm_get_visible(owner=owner, name=name, user=reader(request))
    return selectors.algorithm_get_manageable(owner=owner, name=name,
                                              user=manager(request, owner))


def page_bounds(request) -> tuple[int, int]:
    """``limit`` (1 or more; above 100 means 100) and ``marker`` (0 or more)."""
    try:
        limit = int(request.GET.get("limit", 50))
        offset = int(request.GET.get("marker") or 0)
    except ValueError:
        raise InputError("limit and marker must be whole numbers.") from None
    if limit < 1 or offset < 0:
        raise InputError("limit must be 1 or more, and marker 0 or more.")
    return offset, min(limit, 100)


def query_flag(request, name: str) -> bool | None:
    """A true/false query parameter (any case), or None when it is not given."""
    value = request.GET.get(name)
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        raise InputError(f"{name} must be true or false, not {value!r}.")
    return value.lower() == "true"


def paged(request, items, serialize) -> dict:
    offset, limit = page_bounds(request)
    window = list(items[offset:offset + limit + 1])
    more = len(window) > limit
    return payloads.listing([serialize(x) for x in window[:limit]],
                            next_marker=str(offset + limit) if more else None, request=request)


class AlgorithmInput(serializers.Serializer):
    class Details(serializers.Serializer):
        label = serializers.CharField(max_length=100, required=False, allow_blank=True)
        summary = serializers.CharField(required=False, allow_blank=True)
        tagline = serializers.CharField(max_length=200, required=False, allow_blank=True)

    class Settings(serializers.Serializer):
        language = serializers.CharField(required=False)
        environment = serializers.CharField(required=False, allow_null=True)
        algorithm_environment = serializers.CharField(required=False, allow_null=True)
        source_visibility = serializers.ChoiceField(Algorithm.SourceVisibility.values, required=False)
        license = serializers.CharField(max_length=60, required=False, allow_blank=True)
        royalty_microcredits = serializers.IntegerField(min_value=0, required=False)
        network_access = serializers.ChoiceField(Algorithm.NetworkAccess.values, required=False)
        pipeline_enabled = serializers.BooleanField(required=False)
        algorithm_callability = serializers.ChoiceField(Algorithm.Callability.values,
                                                        required=False)
        categories = serializers.ListField(child=serializers.CharField(), required=False)
        tags = serializers.ListField(child=serializers.CharField(max_length=40), required=False)

    details = Details(required=False)
    settings = Settings(required=False)

    def fields_for_service(self) -> dict:
        data = self.validated_data
        fields = dict(data.get("details") or {})
        settings = dict(data.get("settings") or {})
        language = (settings.pop("language", None) or settings.pop("algorithm_environment", None)
                    or settings.pop("environment", None))
        settings.pop("environment", None)
        settings.pop("algorithm_environment", None)
        if language:
            fields["language"] = normalize_language(language)
        if "algorithm_callability" in settings:
            fields["callability"] = settings.pop("algorithm_callability")
        fields.update(settings)
        return fields


class AlgorithmListApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request, owner: str):
        algorithms = selectors.algorithms_visible_to(user=reader(request)).filter(
            owner_name__iexact=owner).order_by("name")
        return Response(paged(request, algorithms, lambda a: payloads.algorithm(
            a, selectors.latest_public_version(algorithm=a), request)))


class AlgorithmCreateApi(APIView):
    class InputSerializer(AlgorithmInput):
        name = serializers.CharField(max_length=64)

    def post(self, request, owner: str):
        actor = manager(request, owner)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        algorithm = services.algorithm_create(actor=actor, owner=owner,
                                              name=data.validated_data["name"],
                                              **data.fields_for_service())
        return Response(payloads.algorithm(algorithm, None, request), status=201)


class AlgorithmDetailApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request, owner: str, name: str):
        algorithm = selectors.algorithm_get_visible(owner=owner, name=name, user=reader(request))
        versions = selectors.versions_visible(algorithm=algorithm, user=reader(request))
        return Response(payloads.algorithm(algorithm, versions.first(), request))


class AlgorithmUpdateApi(APIView):
    def put(self, request, owner: str, name: str):
        actor = manager(request, owner)
        algorithm = selectors.algorithm_get_manageable(owner=owner, name=name, user=actor)
        data = AlgorithmInput(data=request.data)
        data.is_valid(raise_exception=True)
        algorithm = services.algorithm_update(algorithm=algorithm, actor=actor,
                                              **data.fields_for_service())
        latest = selectors.versions_visible(algorithm=algorithm, user=actor).first()
        return Response(payloads.algorithm(algorithm, latest, request))


class AlgorithmDeleteApi(APIView):
    def delete(self, request, owner: str, name: str):
        actor = manager(request, owner)
        algorithm = selectors.algorithm_get_manageable(owner=owner, name=name, user=actor)
        services.algorithm_delete(algorithm=algorithm, actor=actor)
        return Response({"result": {"deleted": f"{owner}/{name}"}})


class SourceUploadApi(APIView):
    """PUT a .tar.gz or .zip as the request body; it becomes the current source."""

    def put(self, request, owner: str, name: str):
        actor = manager(request, owner)
        algorithm = selectors.algorithm_get_manageable(owner=owner, name=name, user=actor)
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if content_type not in UPLOAD_TYPES:
            raise UnsupportedBundleType(
                f"Send the bundle as application/gzip or application/zip, not '{content_type}'.")
        stream = request._request
        bundle = services.source_bundle_upload(
            algorithm=algorithm, actor=actor, content_type=content_type,
            chunks=iter(lambda: stream.read(1024 * 1024), b""))
        return Response({"content_hash": bundle.content_hash, "files": bundle.file_count,
                         "bytes": bundle.size_bytes, "format": bundle.archive_format}, status=201)


class CompileApi(APIView):
    def post(self, request, owner: str, name: str):
        actor = manager(request, owner)
        algorithm = selectors.algorithm_get_manageable(owner=owner, name=name, user=actor)
        build = services.build_start(algorithm=algorithm, actor=actor)
        build.refresh_from_db()  # an eager build (no broker) has already finished
        return Response(payloads.version(algorithm, build, None, request))


class BuildListApi(APIView):
    def get(self, request, owner: str, name: str):
        algorithm = managed(request, owner, name)
        return Response(paged(request, selectors.builds_of(algorithm=algorithm), payloads.build))


class BuildDetailApi(APIView):
    def get(self, request, owner: str, name: str, build_id: str):
        algorithm = managed(request, owner, name)
        return Response(payloads.build(selectors.build_get(algorithm=algorithm, build_id=build_id)))


class BuildLogsApi(APIView):
    def get(self, request, owner: str, name: str, build_id: str):
        algorithm = managed(request, owner, name)
        return Response({"logs": selectors.build_get(algorithm=algorithm, build_id=build_id).logs})


class VersionListApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request, owner: str, name: str):
        user = reader(request)
        algorithm = selectors.algorithm_get_visible(owner=owner, name=name, user=user)
        callable_only = query_flag(request, "callable")
        if query_flag(request, "published") is False:
            # Successful builds never published, for those who manage the algorithm (only
            # they may call one, by its hash): semantic_version null, git_hash its hash.
            builds = (selectors.builds_unpublished(algorithm=algorithm)
                      if selectors.can_manage(algorithm=algorithm, user=user)
                      and not callable_only else Build.objects.none())
            return Response(paged(request, builds,
                                  lambda b: payloads.version(algorithm, b, None, request)))
        versions = selectors.versions_visible(algorithm=algorithm, user=user)
        if callable_only:
            versions = versions.filter(callability=Algorithm.Callability.PUBLIC)
        return Response(paged(request, versions,
                              lambda v: payloads.version(algorithm, v.build, v, request)))


class VersionPublishApi(APIView):
    class InputSerializer(serializers.Serializer):
        class Settings(serializers.Serializer):
            algorithm_callability = serializers.ChoiceField(Algorithm.Callability.values,
                                                            required=False)
            royalty_microcredits = serializers.IntegerField(min_value=0, required=False,
                                                            allow_null=True)

        class VersionInfo(serializers.Serializer):
            version_type = serializers.ChoiceField(["major", "minor", "revision"])
            release_notes = serializers.CharField(required=False, allow_blank=True, default="")
            sample_input = serializers.CharField(required=False, allow_blank=True, default="")
            sample_output = serializers.CharField(required=False, allow_blank=True, default="")

        settings = Settings(required=False)
        version_info = VersionInfo()

    def post(self, request, owner: str, name: str):
        actor = manager(request, owner)
        algorithm = selectors.algorithm_get_manageable(owner=owner, name=name, user=actor)
        if not isinstance(request.data, dict):
            raise InputError('Send a JSON object: {"version_info": {"version_type": "minor"}}.')
        body = {k: v for k, v in request.data.items() if v not in ({}, None)}
        data = self.InputSerializer(data=body)
        data.is_valid(raise_exception=True)
        settings = data.validated_data.get("settings") or {}
        info = data.validated_data["version_info"]
        version = services.version_publish(
            algorithm=algorithm, actor=actor, version_type=info["version_type"],
            release_notes=info["release_notes"], sample_input=info["sample_input"],
            sample_output=info["sample_output"],
            callability=settings.get("algorithm_callability"),
            royalty_microcredits=settings.get("royalty_microcredits"))
        algorithm.refresh_from_db()
        return Response(payloads.version(algorithm, version.build, version, request))


class VersionDetailApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request, owner: str, name: str, version: str):
        resolved = selectors.version_resolve(owner=owner, name=name, spec=version,
                                             user=reader(request))
        return Response(payloads.version(resolved.algorithm, resolved.build, resolved.version,
                                         request))


class SearchApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        services.popularity_refresh_if_embedded()
        algorithms = selectors.algorithm_search(
            query=request.GET.get("q", ""), category=request.GET.get("category", ""),
            tag=request.GET.get("tag", ""), sort=request.GET.get("sort", ""),
            user=reader(request))
        return Response(paged(request, algorithms, lambda a: {
            "owner": a.owner_name, "name": a.name, "label": a.label, "tagline": a.tagline,
            "royalty_microcredits": a.price, "calls_30d": a.calls_30d,
            "categories": [c.slug for c in a.categories.all()],
            "tags": [t.name for t in a.tags.all()],
            "self_link": request.build_absolute_uri(f"/algorithms/{a.owner_name}/{a.name}/"),
        }))


# --- Secrets (the official client's set_secret / get_secrets) -----------------------------

SECRET_PROVIDER = {"id": "algostore-encrypted", "name": "Algostore (encrypted at rest)",
                   "description": "Stored encrypted; injected as environment variables.",
                   "is_default": True}


class SecretProviderListApi(APIView):
    def get(self, request):
        return Response([SECRET_PROVIDER])


def _algorithm_by_id(request, algorithm_id) -> Algorithm:
    algorithm = Algorithm.objects.filter(uuid=algorithm_id).first()
    if algorithm is None or not selectors.can_manage(algorithm=algorithm, user=request.user):
        raise NotFoundError("No such algorithm.")
    manager(request, algorithm.owner_name)
    return algorithm


def _secret_output(secret) -> dict:
    return {"id": str(secret.secret_id), "short_name": secret.short_name,
            "secret_key": secret.secret_key, "description": secret.description,
            "owner_type": "algorithm", "owner_id": str(secret.algorithm.uuid),
            "provider_id": SECRET_PROVIDER["id"], "created": secret.created_at.isoformat(),
            "modified": secret.updated_at.isoformat()}


class SecretListApi(APIView):
    def get(self, request, algorithm_id):
        algorithm = _algorithm_by_id(request, algorithm_id)
        return Response({"secrets": [_secret_output(s) for s in algorithm.secrets.all()]})


class SecretCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        short_name = serializers.CharField(max_length=64, required=False, allow_blank=True)
        secret_key = serializers.CharField(max_length=64)
        secret_value = serializers.CharField(max_length=16_384, trim_whitespace=False)
        description = serializers.CharField(max_length=300, required=False, allow_blank=True)
        # The official client sends the default provider's id (from the list above): the
        # only one there is. Another is an error, not a secret kept somewhere it did not ask.
        provider_id = serializers.ChoiceField(
            choices=[SECRET_PROVIDER["id"]], required=False,
            error_messages={"invalid_choice": f'Unknown secret provider "{{input}}": the one '
                                              f'provider is "{SECRET_PROVIDER["id"]}".'})

    def post(self, request, algorithm_id):
        algorithm = _algorithm_by_id(request, algorithm_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        secret = services.secret_set(
            algorithm=algorithm, actor=request.user, short_name=values.get("short_name", ""),
            secret_key=values["secret_key"], secret_value=values["secret_value"],
            description=values.get("description", ""))
        return Response(_secret_output(secret), status=201)
