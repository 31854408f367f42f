"""No API key and no call result in the servers' log lines: uvicorn logs a WebSocket's path
with its query string (``?key=``), Celery each task's return value."""
import logging

from celery.app import trace


def test_a_websockets_key_is_redacted_in_uvicorns_log(caplog):
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    # As uvicorn's WebSocket protocols log an accepted connection.
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" [accepted]', "127.0.0.1:50312",
        "/ws/requests/5f1c?stdout=1&key=ak_abcdefghij_SECRETPART&x=1")
    assert caplog.messages == [
        '127.0.0.1:50312 - "WebSocket /ws/requests/5f1c?stdout=1&key=[redacted]&x=1" [accepted]']


def test_a_key_anywhere_in_a_logged_path_loses_its_secret(caplog):
    """Under another parameter's name, or in the path itself: the secret part goes, the
    prefix that names the key on its owner's keys page stays."""
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    caplog.set_level(logging.INFO, logger="uvicorn.error")  # (a uvicorn run here sets WARNING)
    secret = "Zx9_-" + "q" * 38
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:50312", "GET",
        f"/v1/data/.my/x?apiKey=ak_abcdefghij_{secret}&token=ak_0123456789_{secret}", "1.1",
        200)
    logging.getLogger("uvicorn.error").info(f"bad path /ws/ak_abcdefghij_{secret}/x")
    logging.getLogger("uvicorn.error").info(f"/x?auth=Simple%20ak_abcdefghij_{secret}")
    assert caplog.messages == [
        '127.0.0.1:50312 - "GET /v1/data/.my/x?apiKey=ak_abcdefghij_[redacted]'
        '&token=ak_0123456789_[redacted] HTTP/1.1" 200',
        "bad path /ws/ak_abcdefghij_[redacted]/x",
        "/x?auth=Simple%20ak_abcdefghij_[redacted]"]
    assert secret not in repr([record.__dict__ for record in caplog.records])


def test_django_logs_a_path_not_found_without_the_key_in_it(client, caplog):
    """A key pasted as a path segment: Django's "Not Found: <path>" warning."""
    caplog.set_level(logging.WARNING, logger="django.request")
    secret = "Q" * 43
    assert client.get(f"/v1/data/.my/ak_abcdefghij_{secret}").status_code in (401, 404)
    assert client.get(f"/ak_abcdefghij_{secret}").status_code == 404
    logged = repr([record.getMessage() for record in caplog.records])
    assert "ak_abcdefghij_[redacted]" in logged and secret not in logged


def test_a_websocket_path_no_route_takes_is_refused_not_an_error(caplog):
    """It was a 500, its ValueError naming the path (a key in it too) in the error log."""
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator

    from marketplace.asgi import application

    async def connect(path):
        communicator = WebsocketCommunicator(
            application, path, headers=[(b"host", b"127.0.0.1"),
                                        (b"origin", b"http://127.0.0.1")])
        return await communicator.connect()

    for path in ("/ws/ak_abcdefghij_" + "Q" * 43, "/ws/requests/x/y", "/nothing"):
        assert async_to_sync(connect)(path) == (False, 4404), path
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_a_tasks_return_value_is_not_logged(caplog):
    caplog.set_level(logging.INFO, logger="celery.app.trace")
    # As Celery's tracer logs a task that succeeded (celery.app.trace.info(LOG_SUCCESS, …)).
    trace.info(trace.LOG_SUCCESS, {
        "id": "c0ffee", "name": "execution.invoke", "runtime": 0.01,
        "return_value": "{'result': {'TOKEN': 's3cr3t-value'}, 'metadata': {}}"})
    assert caplog.messages == [
        "Task execution.invoke[c0ffee] succeeded in 0.01s: (not logged)"]
    assert "s3cr3t" not in repr(caplog.records[0].__dict__)
