"""``/v1/data/...``: the Data API of API.md, as the official client speaks it."""
import json
from urllib.parse import quote

from django.http import HttpResponse
from django.conf import settings
from rest_framework.response import Response
from rest_framework.views import APIView

from datastore import connectors, selectors, services
from marketplace.errors import ApplicationError, InputError, NotFoundError
from marketplace.parsers import RawBodyParser
from marketplace.streaming import streaming_response


def _json_body(request) -> dict:
    try:
        body = json.loads(request._request.body or b"{}")
    except ValueError:
        raise InputError("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InputError("The body must be a JSON object.")
    return body


def _marker(request) -> str | None:
    marker = request.query_params.get("marker") or None
    if marker is not None and (len(marker) > 1024 or not marker.isprintable()):
        raise InputError("marker must be the value a previous listing returned.")
    return marker


def _streaming(request, handle) -> HttpResponse:
    return streaming_response(request, handle, "application/octet-stream")


def file_response(request, data_file) -> HttpResponse:
    """A stored file, streamed."""
    response = _streaming(request, services.data_storage().open(data_file.storage_key, "rb"))
    response["Content-Length"] = str(data_file.size)
    response["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(data_file.name)}"
    response["ETag"] = f'"{data_file.sha256}"'
    return response


class DataApi(APIView):
    parser_classes = [RawBodyParser]

    def dispatch(self, request, *args, **kwargs):
        if kwargs.get("path", "").startswith("s3:"):
            self.s3 = True
        return super().dispatch(request, *args, **kwargs)

    s3 = False

    def _s3_get(self, request, path: str):
        s3_path = connectors.s3_path_parse(path)
        connector = connectors.connector_for(request.auth, s3_path, write=False)
        found, body = connectors.object_or_listing(connector, s3_path, _marker(request),
                                                   settings.DATA_LIST_PAGE_SIZE)
        if body is not None:
            return Response(body)
        stream, length = found
        response = _streaming(request._request, stream)
        if length is not None:
            response["Content-Length"] = str(length)
        return response

    def _path(self, request, path: str) -> services.DataPath:
        return services.data_path_parse(path, key=request.auth)

    # --- reads ----------------------------------------------------------------------------
    def get(self, request, path: str):
        if self.s3:
            return self._s3_get(request, path)
        target = self._path(request, path)
        key, marker = request.auth, _marker(request)
        if target.collection is None:
            services.require_scope(key, "read")
            owns = services.namespace_owned(key, target.owner)
            return Response(selectors.collections_listing(
                owner=target.owner, marker=marker,
                readable=lambda c: services.can_read(key, c, owns=owns)))
        collection = services.collection_for(target, key, write=False)
        if target.file is None:
            return Response(selectors.files_listing(
                collection=collection, marker=marker,
                with_acl=request.query_params.get("acl") == "true"))
        data_file = selectors.file_get(collection=collection, name=target.file)
        if data_file is None:
            raise NotFoundError(f"No such file: {target.uri}.")
        return file_response(request._request, data_file)

    def head(self, request, path: str):
        try:
            if self.s3:
                s3_path = connectors.s3_path_parse(path)
                connector = connectors.connector_for(request.auth, s3_path, write=False)
                if not connectors.object_exists(connector, s3_path):
                    raise NotFoundError(f"No such object: {s3_path.uri}.")
                return HttpResponse(status=200)
            target = self._path(request, path)
            if target.collection is None:
                services.namespace_owned(request.auth, target.owner)
                return HttpResponse(status=200)
            collection = services.collection_for(target, request.auth, write=False)
            if target.file is not None:
                data_file = selectors.file_get(collection=collection, name=target.file)
                if data_file is None:
                    raise NotFoundError(f"No such file: {target.uri}.")
                response = HttpResponse(status=200, content_type="application/octet-stream")
                response["X-Data-Size"] = str(data_file.size)
                return response
            return HttpResponse(status=200)
        except ApplicationError as error:  # HEAD has no body: the message goes in a header
            response = HttpResponse(json.dumps(error.body()),
                                    status=error.status_code, content_type="application/json")
            response["X-Error-Message"] = "".join(c if c.isprintable() else " "
                                                  for c in error.message)
            return response

    # --- writes ---------------------------------------------------------------------------
    def put(self, request, path: str):
        if self.s3:
            s3_path = connectors.s3_path_parse(path)
            if not s3_path.key or s3_path.key.endswith("/"):
                raise InputError("PUT writes an object: s3://bucket/key.")
            connector = connectors.connector_for(request.auth, s3_path, write=True)
            connectors.object_put(connector, s3_path, services.CountingReader(
                request._request, settings.DATA_MAX_FILE_BYTES))
            return Response({"result": s3_path.uri})
        target = self._path(request, path)
        if target.file is None:
            raise InputError("PUT writes a file: data://owner/collection/file.")
        collection = services.collection_for(target, request.auth, write=True)
        length = request.META.get("CONTENT_LENGTH")
        services.file_put(collection=collection, name=target.file, stream=request._request,
                          length=int(length) if length and length.isdigit() else None,
                          actor=request.user)
        return Response({"result": target.uri})

    def post(self, request, path: str):
        target = self._path(request, path)
        body = _json_body(request)
        if not isinstance(body.get("name"), str):
            raise InputError('Give the new collection a name: {"name": "photos"}.')
        collection = services.collection_create(parent=target, name=body["name"],
                                                acl=body.get("acl"), key=request.auth,
                                                actor=request.user)
        return Response({"result": str(collection), "acl": collection.acl})

    def patch(self, request, path: str):
        target = self._path(request, path)
        if target.collection is None or target.file is not None:
            raise InputError("PATCH sets a collection's ACL: data://owner/collection.")
        if target.space:
            raise InputError("An algorithm's data spaces are private; their ACL cannot change.")
        collection = services.collection_for(target, request.auth, write=True)
        body = _json_body(request)
        if "acl" not in body:
            raise InputError('Send {"acl": {"read": [...]}}.')
        collection = services.collection_set_acl(collection=collection, acl=body["acl"],
                                                 actor=request.user)
        return Response({"acl": collection.acl})

    def delete(self, request, path: str):
        if self.s3:
            s3_path = connectors.s3_path_parse(path)
            connector = connectors.connector_for(request.auth, s3_path, write=True)
            if not connectors.object_exists(connector, s3_path):
                raise NotFoundError(f"No such object: {s3_path.uri}.")
            connectors.object_delete(connector, s3_path)
            return Response({"result": {"deleted": 1}})
        target = self._path(request, path)
        if target.collection is None:
            raise InputError("Name the collection or file to delete.")
        collection = services.collection_for(target, request.auth, write=True)
        if target.file is None:
            deleted = services.collection_delete(
                collection=collection, force=request.query_params.get("force") == "true",
                actor=request.user)
            return Response({"result": {"deleted": deleted}})
        data_file = selectors.file_get(collection=collection, name=target.file)
        if data_file is None:
            raise NotFoundError(f"No such file: {target.uri}.")
        services.file_delete(data_file=data_file)
        return Response({"result": {"deleted": 1}})


def _boolean(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise InputError(f"{name} must be true or false.")
    return value


class ConnectorListApi(APIView):
    """``GET /v1/connectors`` (yours) and ``POST /v1/connectors`` (add an S3 one)."""

    def get(self, request):
        from datastore.models import Connector

        connectors.require_manager(request.auth)
        owned = Connector.objects.filter(**connectors._owner_q(request.auth))
        return Response({"results": [connectors.connector_output(c) for c in owned]})

    def post(self, request):
        body = request.data if isinstance(request.data, dict) else {}
        if body.get("type", "s3") != "s3":
            raise InputError("Only s3 connectors are supported.")
        connector = connectors.connector_create(
            key=request.auth, actor=request.user, bucket=str(body.get("bucket", "")),
            access_key_id=str(body.get("access_key_id", "")),
            secret_access_key=str(body.get("secret_access_key", "")),
            path_prefix=str(body.get("path_prefix", "")), writable=_boolean(body, "writable"),
            endpoint_url=str(body.get("endpoint_url", "")), region=str(body.get("region", "")))
        return Response(connectors.connector_output(connector), status=201)


class ConnectorDetailApi(APIView):
    def delete(self, request, connector_id: str):
        connectors.connector_delete(key=request.auth, actor=request.user,
                                    connector_id=connector_id)
        return Response({"deleted": 1})
