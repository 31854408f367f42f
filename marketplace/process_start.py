"""What a long-running process (a web worker, a Celery worker) does once it has loaded
everything it serves with.

The objects it made starting up (Django, its apps, the libraries) live as long as the
process, yet the cyclic garbage collector scanned them again at every older-generation
collection: full collections of 60-230 ms and second-generation ones of up to 14 ms, in the
middle of calls (docs/benchmarks.md). ``gc.freeze`` moves them out of its sight.
"""
import gc


def freeze_startup_objects() -> None:
    gc.collect()  # what startup left unreachable goes now, not frozen forever
    gc.freeze()
