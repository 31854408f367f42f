"""A test algorithm, written with the ADK like any other, that tries what it is told to."""
import os
import socket
import time

from adk import ADK


def apply(input):
    if isinstance(input, (bytes, bytearray)):
        return bytes(reversed(input))
    if isinstance(input, str):
        return "echo: " + input
    if not isinstance(input, dict):
        return input
    action = input.get("action")
    if action == "sleep":
        time.sleep(input.get("seconds", 5))
        return "slept"
    if action == "connect":
        socket.create_connection((input["host"], input["port"]), timeout=2).close()
        return "connected"
    if action == "read":
        with open(input["path"], "rb") as handle:
            return handle.read(100).decode("utf-8", "replace")
    if action == "listdir":
        return sorted(os.listdir(input["path"]))
    if action == "env":
        return dict(os.environ)
    if action == "whoami":
        return {"uid": os.getuid(), "pid": os.getpid(), "hostname": socket.gethostname()}
    if action == "forkbomb":
        children = 0
        while children < 100_000:
            pid = os.fork()
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            children += 1
        return children
    if action == "alloc":
        return len(bytearray(input["bytes"]))
    if action == "print":
        print(input["text"])
        return "printed"
    if action == "print_slowly":  # a line, a pause, a line: a caller can watch it happen
        for line in input["lines"]:
            print(line)
            time.sleep(input.get("pause", 1))
        return "printed"
    if action == "raise":
        raise ValueError(input.get("message", "boom"))
    if action == "nan":  # Python's json writes NaN; JSON has no form for it
        return {"score": float("nan")}
    if action == "binary":
        return bytes(range(256))
    if action == "exit":
        os._exit(3)
    return input


algorithm = ADK(apply)
algorithm.init({"action": "whoami"})
