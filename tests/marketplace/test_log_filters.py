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


def test_a_tasks_return_value_is_not_logged(caplog):
    caplog.set_level(logging.INFO, logger="celery.app.trace")
    # As Celery's tracer logs a task that succeeded (celery.app.trace.info(LOG_SUCCESS, …)).
    trace.info(trace.LOG_SUCCESS, {
        "id": "c0ffee", "name": "execution.invoke", "runtime": 0.01,
        "return_value": "{'result': {'TOKEN': 's3cr3t-value'}, 'metadata': {}}"})
    assert caplog.messages == [
        "Task execution.invoke[c0ffee] succeeded in 0.01s: (not logged)"]
    assert "s3cr3t" not in repr(caplog.records[0].__dict__)
