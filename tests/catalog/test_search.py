"""Discovery: search ranking, filters, sorting, visibility — on SQLite and on PostgreSQL."""
import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from catalog import selectors, services
from catalog.models import Category
from tests.catalog.conftest import fake_successful_build

pytestmark = pytest.mark.django_db


def published(user, name, *, tagline="", summary="", royalty=0, callability="public",
              categories=(), tags=(), calls=0):
    algorithm = services.algorithm_create(actor=user, owner=user.username, name=name,
                                          tagline=tagline, summary=summary,
                                          royalty_microcredits=royalty,
                                          categories=list(categories), tags=list(tags))
    fake_successful_build(algorithm, user, content=name)
    services.version_publish(algorithm=algorithm, actor=user, version_type="minor",
                             callability=callability)
    made_calls(algorithm, calls)
    return algorithm


def made_calls(algorithm, count: int, *, days_ago: int = 0) -> None:
    """``count`` calls of ``algorithm`` recorded ``days_ago``, then popularity counted."""
    import uuid
    from datetime import timedelta

    from django.utils import timezone

    from catalog.services.algorithms import algorithm_calls_refresh
    from execution.models import Invocation

    ids = [uuid.uuid4() for _ in range(count)]
    Invocation.objects.bulk_create(Invocation(
        request_id=i, trace_id=i, algorithm=algorithm, algorithm_path=algorithm.path,
        version_text="0.1.0", input_content_type="json") for i in ids)
    Invocation.objects.filter(request_id__in=ids).update(
        created_at=timezone.now() - timedelta(days=days_ago))
    algorithm_calls_refresh()


@pytest.fixture
def shelf(user):
    Category.objects.create(name="Text", slug="text")
    return {
        "sentiment": published(user, "sentiment", tagline="Positive or negative",
                               categories=["text"], tags=["nlp"], royalty=3, calls=5),
        "summarizer": published(user, "summarizer", tagline="Shortens text",
                                summary="Unlike a sentiment model, it writes summaries.",
                                categories=["text"], royalty=1, calls=50),
        "resize": published(user, "resize", tagline="Resizes images", tags=["vision"], calls=10),
        "hidden": published(user, "sentiment_private", tagline="sentiment", callability="private"),
    }


def names(queryset) -> list[str]:
    return [a.name for a in queryset]


def test_an_exact_name_match_ranks_above_a_mention_in_the_docs(shelf):
    assert names(selectors.algorithm_search(query="sentiment"))[:2] == ["sentiment", "summarizer"]


def test_private_algorithms_are_found_only_by_their_owner(shelf, user):
    from tests.factories import UserFactory

    assert "sentiment_private" not in names(selectors.algorithm_search(query="sentiment",
                                                                       user=UserFactory()))
    assert "sentiment_private" in names(selectors.algorithm_search(query="sentiment", user=user))


def test_filters_and_sorts(shelf):
    assert set(names(selectors.algorithm_search(category="text"))) == {"sentiment", "summarizer"}
    assert names(selectors.algorithm_search(tag="vision")) == ["resize"]
    assert names(selectors.algorithm_search(sort="popular")) == ["summarizer", "resize",
                                                                 "sentiment"]
    assert names(selectors.algorithm_search(sort="price"))[0] in ("resize",)
    assert names(selectors.algorithm_search(sort="newest"))[0] == "resize"


def test_unpublished_algorithms_are_not_listed(user, shelf):
    services.algorithm_create(actor=user, owner=user.username, name="draft", tagline="sentiment")
    assert "draft" not in names(selectors.algorithm_search(query="sentiment", user=user))


def test_search_api(shelf, client):
    response = client.get("/v1/search?q=resize")
    assert response.status_code == 200
    body = response.json()
    assert [r["name"] for r in body["results"]] == ["resize"]
    assert body["results"][0]["tags"] == ["vision"]


@pytest.mark.services
def test_postgresql_full_text_search_uses_the_gin_index_and_ranks_names_first(shelf):
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = "
                       "'catalog_algorithm_search_gin'")
        assert "gin (search_vector)" in cursor.fetchone()[0]
    ranked = list(selectors.algorithm_search(query="sentiment"))
    assert [a.name for a in ranked[:2]] == ["sentiment", "summarizer"]
    assert ranked[0].rank > ranked[1].rank
    # Stemming: the plural still finds the word.
    assert "resize" in names(selectors.algorithm_search(query="images"))


def test_popularity_is_counted_from_the_last_30_days_of_calls(user, settings):
    """calls_30d was never counted (every algorithm stayed at 0, so "popular" was by name):
    it is the calls of the last 30 days, composed ones included, counted again by beat, and
    when the catalog is browsed embedded (no beat)."""
    from django.core.cache import cache

    from catalog.models import Algorithm
    from execution.models import Invocation

    old, new = published(user, "old"), published(user, "new")
    made_calls(old, 5, days_ago=31)
    made_calls(old, 2, days_ago=29)
    made_calls(new, 3)
    assert dict(Algorithm.objects.values_list("name", "calls_30d")) == {"old": 2, "new": 3}
    assert names(selectors.algorithm_search()) == ["new", "old"]
    Invocation.objects.filter(algorithm=new).update(algorithm=old)  # (as if made for old)
    # Searching reads only: the selector does not count.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    cache.delete("catalog:calls-refreshed")
    assert names(selectors.algorithm_search()) == ["new", "old"]
    # Browsing does, embedded: the search API, then (once the minute is up) the page.
    response = APIClient().get("/v1/search")
    assert response.status_code == 200
    assert [(a["name"], a["calls_30d"]) for a in response.json()["results"]] == [
        ("old", 5), ("new", 0)]
    Invocation.objects.filter(algorithm=old).update(algorithm=new)
    assert APIClient().get("/v1/search").json()["results"][0]["name"] == "old"  # (a minute)
    cache.delete("catalog:calls-refreshed")
    page = Client().get("/browse/")
    assert page.status_code == 200
    assert dict(Algorithm.objects.values_list("name", "calls_30d")) == {"old": 0, "new": 5}
    # And the author's dashboard (it showed 5 after 40 calls: only browsing counted).
    Invocation.objects.filter(algorithm=new).update(algorithm=old)
    cache.delete("catalog:calls-refreshed")
    author = Client()
    author.force_login(user)
    dashboard = author.get("/dashboard/").content.decode()
    assert dict(Algorithm.objects.values_list("name", "calls_30d")) == {"old": 5, "new": 0}
    assert "<td>5</td>" in dashboard
    assert page.content.index(b"/algorithms/%s/new/" % user.username.encode()) < \
        page.content.index(b"/algorithms/%s/old/" % user.username.encode())


def test_the_price_shown_and_sorted_is_what_a_call_costs_now(user):
    """The algorithm's royalty is the next version's (set in its settings, it applies when
    a version is published); browse and search showed and sorted by it, not by the
    published version's, which is what a call costs."""
    cheap = published(user, "cheap", royalty=1)
    published(user, "middle", royalty=5)
    services.algorithm_update(algorithm=cheap, actor=user, royalty_microcredits=9)
    assert names(selectors.algorithm_search(sort="price")) == ["cheap", "middle"]
    results = APIClient().get("/v1/search", {"sort": "price"}).json()["results"]
    assert [(a["name"], a["royalty_microcredits"]) for a in results] == [
        ("cheap", 1), ("middle", 5)]
