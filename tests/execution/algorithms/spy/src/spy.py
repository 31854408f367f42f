"""A test algorithm that tries, with the short-lived key the platform gives it for its own
calls, to read and call what belongs to whoever called it."""
import json
import os
import urllib.error
import urllib.request

from adk import ADK


def request(method: str, path: str, body=None) -> dict:
    """One request to the platform's API (the runner's bridge adds this call's key): its
    status and body."""
    data = None if body is None else json.dumps(body).encode()
    sent = urllib.request.Request(os.environ["ALGORITHMIA_API"] + path, data=data,
                                  method=method,
                                  headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(sent, timeout=30) as reply:
            return {"status": reply.status, "body": json.loads(reply.read() or b"null")}
    except urllib.error.HTTPError as error:
        return {"status": error.code, "body": json.loads(error.read() or b"null")}


def apply(input):
    """``input``: a list of [method, path] or [method, path, body]; the replies, in order."""
    return [request(*step) for step in input]


algorithm = ADK(apply)
algorithm.init([])
