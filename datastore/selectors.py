"""Data API reads: listings with marker pagination, in the shapes the official client parses."""
from django.conf import settings

from datastore.models import Collection, DataFile

DATE_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _page(queryset, field: str, marker: str | None, size: int):
    if marker:
        queryset = queryset.filter(**{f"{field}__gt": marker})
    rows = list(queryset.order_by(field)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return rows, (getattr(rows[-1], field) if more and rows else None)


def collections_listing(*, owner: str, readable, marker: str | None) -> dict:
    """An owner's collections that ``readable(collection)`` allows, as folders."""
    size = settings.DATA_LIST_PAGE_SIZE
    queryset = Collection.objects.filter(owner_name__iexact=owner).exclude(
        name__startswith="~")  # algorithms' spaces are reached by .algo and .session only
    folders, cursor, more = [], marker, False
    while True:  # skip what the caller may not see without shortening a page needlessly
        rows, cursor = _page(queryset, "name", cursor, size)
        folders += [c.name for c in rows if readable(c)]
        if cursor is None or len(folders) >= size:
            more = cursor is not None or len(folders) > size
            break
    page = folders[:size]
    body = {"folders": [{"name": name} for name in page], "files": []}
    if more and page:
        body["marker"] = page[-1]  # the next page starts after the last one shown
    return body


def files_listing(*, collection: Collection, marker: str | None, with_acl: bool) -> dict:
    rows, next_marker = _page(DataFile.objects.filter(collection=collection), "name", marker,
                              settings.DATA_LIST_PAGE_SIZE)
    body = {"folders": [], "files": [
        {"filename": f.name, "size": f.size,
         "last_modified": f.updated_at.strftime(DATE_FORMAT)} for f in rows]}
    if next_marker:
        body["marker"] = next_marker
    if with_acl:
        body["acl"] = collection.acl
    return body


def file_get(*, collection: Collection, name: str) -> DataFile | None:
    return DataFile.objects.filter(collection=collection, name=name).first()
