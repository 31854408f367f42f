"""Platform shim loaded by every Python algorithm (it is on PYTHONPATH in the sandbox).

algorithmia-adk 1.2.4 calls ``traceback.format_exception(etype=…)``, a keyword Python 3.10
removed; without this shim an ADK algorithm that raises would crash instead of reporting an
AlgorithmError. Nothing else is changed.
"""
import traceback

_format_exception = traceback.format_exception


def _format_exception_compat(*args, **kwargs):
    if "etype" in kwargs:  # the old spelling: (etype, value, tb) as keywords
        args = (kwargs.pop("etype"),) + args
    return _format_exception(*args, **kwargs)


traceback.format_exception = _format_exception_compat


def _bridge_platform_api():
    """Forward 127.0.0.1:<port> to the runner's unix socket: the algorithm's only way out."""
    import os
    import socket
    import threading

    path, port = os.environ.get("ALGOSTORE_API_SOCKET"), os.environ.get("ALGOSTORE_API_PORT")
    if not path or not port:
        return

    def pipe(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def accept(listener):
        while True:
            client, _ = listener.accept()
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(path)
            except OSError:
                client.close()
                continue
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", int(port)))
    except OSError:
        return  # a child process of the algorithm: the bridge already runs in its parent
    listener.listen(64)
    threading.Thread(target=accept, args=(listener,), daemon=True).start()


_bridge_platform_api()
