"""Streaming a file-like object as a response, under WSGI and ASGI alike: under ASGI Django
reads a synchronous iterator whole into memory before sending it, so there an asynchronous
one sends it chunk by chunk."""
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, HttpResponse, StreamingHttpResponse

CHUNK_BYTES = 1 << 20


async def _chunks_async(handle):
    read = sync_to_async(handle.read, thread_sensitive=False)
    try:
        while chunk := await read(CHUNK_BYTES):
            yield chunk
    finally:
        await sync_to_async(handle.close, thread_sensitive=False)()


def streaming_response(request, handle, content_type: str) -> HttpResponse:
    if isinstance(request, ASGIRequest):
        return StreamingHttpResponse(_chunks_async(handle), content_type=content_type)
    return FileResponse(handle, content_type=content_type)
