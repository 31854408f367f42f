"""Reads of the execution tier: latency figures for the algorithm page."""
from statistics import quantiles

from execution.models import Invocation

SAMPLE = 500


def _percentile(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return quantiles(values, n=100, method="inclusive")[q - 1]


def version_latency(*, version_ids: list[int]) -> dict[int, dict]:
    """Per version: p50/p95 of the algorithm's run time and of whole calls (last 500
    successful calls), and the median cold start."""
    stats = {}
    for version_id in version_ids:
        rows = list(Invocation.objects.filter(version_id=version_id, status="succeeded")
                    .order_by("-created_at").values_list("run_ms", "total_ms", "cold_start_ms")
                    [:SAMPLE])
        runs = [r[0] for r in rows if r[0] is not None]
        totals = [r[1] for r in rows if r[1] is not None]
        colds = [r[2] for r in rows if r[2]]
        stats[version_id] = {
            "calls": len(rows), "run_p50": _percentile(runs, 50), "run_p95": _percentile(runs, 95),
            "total_p50": _percentile(totals, 50), "total_p95": _percentile(totals, 95),
            "cold_start_p50": _percentile(colds, 50),
        }
    return stats
