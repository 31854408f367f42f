"""Reads of the execution tier: latency figures for the algorithm page."""
from statistics import quantiles

from django.db.models import Count

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


def call_graph_successors(*, algorithm_id: int, sample: int = 50,
                          threshold: float = 0.5) -> list[Invocation]:
    """Algorithms that most calls to this one go on to call (the call graph's edges out of
    it): for each, its latest child call, from which its runner can be started."""
    parents = list(Invocation.objects.filter(algorithm_id=algorithm_id)
                   .order_by("-created_at").values_list("pk", flat=True)[:sample])
    if len(parents) < 2:
        return []
    edges = (Invocation.objects.filter(parent_id__in=parents, algorithm_id__isnull=False)
             .values("algorithm_id").annotate(parents=Count("parent_id", distinct=True)))
    successors = []
    for edge in edges:
        if edge["parents"] / len(parents) >= threshold:
            latest = (Invocation.objects.filter(parent_id__in=parents,
                                                algorithm_id=edge["algorithm_id"])
                      .select_related("algorithm", "build").order_by("-created_at").first())
            successors.append(latest)
    return successors


def usage_rows(*, start, end, group_by: tuple[str, ...], callers: list[str] | None = None
               ) -> list[dict]:
    """Calls between two dates (inclusive), grouped: total calls and errors, and the run
    milliseconds of each (the Algorithmia admin usage reports)."""
    from django.db.models import Q, Sum
    from django.db.models.functions import Coalesce

    fields = {"algorithm": "algorithm_path", "version": "version_text",
              "owner": "algorithm__owner_name", "caller": "caller__username"}
    calls = Invocation.objects.filter(created_at__date__gte=start, created_at__date__lte=end)
    if callers:
        calls = calls.filter(caller__username__in=callers)
    failed = Q(status=Invocation.Status.FAILED)
    columns = [fields[name] for name in group_by]
    rows = (calls.values(*columns)
            .annotate(total_calls=Count("id"), total_errors=Count("id", filter=failed),
                      total_duration=Coalesce(Sum("run_ms"), 0.0),
                      total_error_duration=Coalesce(Sum("run_ms", filter=failed), 0.0))
            .order_by(*columns))
    return [{**{name: row[fields[name]] or "" for name in group_by},
             "total_calls": row["total_calls"], "total_errors": row["total_errors"],
             "total_duration": int(row["total_duration"]),
             "total_error_duration": int(row["total_error_duration"])} for row in rows]


def recent_failures(*, limit: int = 20) -> list[Invocation]:
    """The latest failed calls, for operators."""
    return list(Invocation.objects.filter(status=Invocation.Status.FAILED)
                .select_related("caller").order_by("-created_at")[:limit])


def invocation_for_derived_key(*, key):
    """The call a derived key was made for (any status), with its algorithm and caller;
    None for every other key."""
    if getattr(key, "parent_id", None) is None or getattr(key, "can_manage", True):
        return None
    return (Invocation.objects.filter(derived_key=key).select_related("algorithm", "caller")
            .first())


def call_is_running(*, request_id) -> bool:
    return Invocation.objects.filter(
        request_id=request_id,
        status__in=[Invocation.Status.QUEUED, Invocation.Status.RUNNING]).exists()
