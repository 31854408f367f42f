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
