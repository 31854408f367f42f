"""``/v1/data/...``: the Data API of API.md, as the official client speaks it."""
import json
from urllib.parse import quote

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from rest_framework.response import Response
from rest_framework.views import APIView

from datastore import selectors, services
from marketplace.errors import ApplicationError, InputError, NotFoundError
from marketplace.parsers import RawBodyParser


def _json_body(request) -> dict:
    try:
        body = json.loads(request._request.body or b"{}")
    except ValueError:
        raise InputError("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InputError("The body must be a JSON object.")
    return body


CHUNK_BYTES = 1 << 20


async def _chunks_async(handle):
    read = sync_to_async(handle.read, thread_sensitive=False)
    try:
        while chunk := await read(CHUNK_BYTES):
            yield chunk
    finally:
        await sync_to_async(handle.close, thread_sensitive=False)()


def file_response(request, data_file) -> HttpResponse:
    """A stored file, streamed: under ASGI Django would read a sync iterator whole into
    memory before sending it, so there an async one sends it chunk by chunk."""
    handle = services.data_storage().open(data_file.storage_key, "rb")
    if isinstance(request, ASGIRequest):
        response = StreamingHttpResponse(_chunks_async(handle),
                                         content_type="application/octet-stream")
    else:
        response = FileResponse(handle, content_type="application/octet-stream")
    response["Content-Length"] = str(data_file.size)
    response["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(data_file.name)}"
    response["ETag"] = f'"{data_file.sha256}"'
    return response


class DataApi(APIView):
    parser_classes = [RawBodyParser]

    def _path(self, request, path: str) -> services.DataPath:
        return services.data_path_parse(path, key=request.auth)

    # --- reads ----------------------------------------------------------------------------
    def get(self, request, path: str):
        target = self._path(request, path)
        key, marker = request.auth, request.query_params.get("marker") or None
        if target.collection is None:
            services._require_scope(key, "read")
            services._owner(target.owner)
            return Response(selectors.collections_listing(
                owner=target.owner, marker=marker,
                readable=lambda c: services.can_read(key, c)))
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
            target = self._path(request, path)
            if target.collection is None:
                services._owner(target.owner)
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
            response = HttpResponse(status=error.status_code)
            response["X-Error-Message"] = error.message
            return response

    # --- writes ---------------------------------------------------------------------------
    def put(self, request, path: str):
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
        collection = services.collection_for(target, request.auth, write=True)
        body = _json_body(request)
        if "acl" not in body:
            raise InputError('Send {"acl": {"read": [...]}}.')
        collection = services.collection_set_acl(collection=collection, acl=body["acl"],
                                                 actor=request.user)
        return Response({"acl": collection.acl})

    def delete(self, request, path: str):
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
