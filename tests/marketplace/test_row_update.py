"""row_update: the call path's single-row UPDATEs, on both databases."""
import uuid
from datetime import datetime, timezone

import pytest

from billing.models import Account
from execution.models import Invocation
from marketplace.row_update import (Insert, RowReader, Update, model_instance, row_update,
                                     write_chain)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_sets_adds_and_only_where_the_condition_holds():
    account = Account.objects.get(user=UserFactory())
    assert row_update(Account, account.pk, add={"reserved": 5}) == 1
    assert row_update(Account, account.pk, add={"reserved": -2}, set={"holder_name": "x"}) == 1
    account.refresh_from_db()
    assert (account.reserved, account.holder_name) == (3, "x")
    assert row_update(Account, account.pk, set={"holder_name": "y"},
                      where={"kind": ("organization", "platform-grants")}) == 0
    assert row_update(Account, account.pk + 10_000, add={"reserved": 1}) == 0
    account.refresh_from_db()
    assert (account.reserved, account.holder_name) == (3, "x")


def test_json_datetimes_and_floats_are_stored_as_the_orm_stores_them():
    request_id = uuid.uuid4()
    call = Invocation.objects.create(request_id=request_id, trace_id=request_id,
                                     algorithm_path="a/b", version_text="1.0.0",
                                     input_content_type="json")
    finished = datetime(2026, 11, 27, 1, 2, 3, 456000, tzinfo=timezone.utc)
    envelope = {"result": {"k": [1, "é"]}, "metadata": {"content_type": "json"}}
    assert row_update(Invocation, call.pk, set={"status": "succeeded", "result": envelope,
                                                "finished_at": finished, "run_ms": 1.5},
                      where={"status": ("queued", "running")}) == 1
    assert row_update(Invocation, call.pk, set={"status": "failed"},
                      where={"status": ("queued", "running")}) == 0  # closed once
    call.refresh_from_db()
    assert (call.status, call.result, call.finished_at, call.run_ms) == (
        "succeeded", envelope, finished, 1.5)


def test_an_empty_in_matches_nothing_and_an_empty_update_is_refused():
    account = Account.objects.get(user=UserFactory())
    assert row_update(Account, account.pk, add={"reserved": 1}, where={"kind": ()}) == 0
    with pytest.raises(ValueError):
        row_update(Account, account.pk, where={"kind": "user"})
    account.refresh_from_db()
    assert account.reserved == 0


def _call(**fields) -> Invocation:
    request_id = uuid.uuid4()
    return Invocation(request_id=request_id, trace_id=request_id, algorithm_path="a/b",
                      version_text="1.0.0", input_content_type="json", **fields)


def _usage(call: Invocation, account: Account, held: int):
    from billing.models import UsageRecord

    return UsageRecord(request_id=call.request_id, trace_id=call.trace_id, payer_id=account.pk,
                       algorithm_path="a/b", version_text="1.0.0", held=held, cap_keys=[7])


def test_a_chain_holds_then_inserts_a_call_and_its_usage_linked_to_it():
    from billing.models import UsageRecord

    account = Account.objects.get(user=UserFactory())
    Account.objects.filter(pk=account.pk).update(balance=100)
    call = _call(options={"timeout": 5})
    usage = _usage(call, account, 60)
    done = write_chain([Update(Account, account.pk, add={"reserved": 60},
                               check=("balance >= reserved + %s", [60])),
                        Insert(call), Insert(usage, links={"invocation_id": 1})])
    assert done == [account.pk, call.pk, usage.pk] and call.pk and usage.pk
    stored = UsageRecord.objects.get(pk=usage.pk)
    assert (stored.invocation_id, stored.held, stored.cap_keys, stored.status) == (
        call.pk, 60, [7], "held")
    row = Invocation.objects.get(pk=call.pk)
    assert (row.options, row.status, row.created_at) == ({"timeout": 5}, "queued",
                                                         call.created_at)
    assert Account.objects.get(pk=account.pk).reserved == 60


def test_a_chain_stops_at_the_first_step_that_changes_nothing_and_writes_nothing_after_it():
    from billing.models import UsageRecord

    account = Account.objects.get(user=UserFactory())
    Account.objects.filter(pk=account.pk).update(balance=100, reserved=50)
    call = _call()
    done = write_chain([Update(Account, account.pk, add={"reserved": 60},
                               check=("balance >= reserved + %s", [60])),
                        Insert(call), Insert(_usage(call, account, 60),
                                             links={"invocation_id": 1})])
    assert done == [None, None, None] and call.pk is None
    assert not Invocation.objects.exists() and not UsageRecord.objects.exists()
    assert Account.objects.get(pk=account.pk).reserved == 50


def test_a_step_runs_after_the_step_it_names_not_only_the_one_before_it():
    first, second, third = (Account.objects.get(user=UserFactory()) for _ in range(3))
    done = write_chain([
        Update(Account, first.pk, add={"reserved": 3}),
        Update(Account, second.pk, add={"reserved": 1}, where={"kind": "organization"}),
        Update(Account, second.pk, add={"reserved": 2}, after=0),  # runs: step 0 changed
        Update(Account, None, add={"reserved": 4}, where={"kind": ()}),  # IN (): nothing
        Update(Account, third.pk, add={"reserved": 5}),  # after the empty one: does not run
        Update(Account, None, add={"reserved": 10}, where={"id": [third.pk]}, after=None)])
    assert done[:5] == [first.pk, None, second.pk, None, None] and done[5]
    assert [Account.objects.get(pk=a.pk).reserved for a in (first, second, third)] == [
        3, 2, 10]


def test_big_and_small_amounts_keep_every_digit_through_the_same_statements():
    """Amounts of every size through the same statements, small ones first (a server-side
    binding once truncated a 10^10 grant to 32 bits): each keeps every digit."""
    account = Account.objects.get(user=UserFactory())
    for amount in (7, 10**12, -(10**12), 3 * 10**10):
        assert row_update(Account, account.pk, add={"balance": amount}) == 1
        assert write_chain([Update(Account, account.pk, add={"balance": amount},
                                   check=("balance + %s >= 0", [amount]))]) == [account.pk]
    assert Account.objects.get(pk=account.pk).balance == account.balance + 2 * (7 + 3 * 10**10)


def test_a_value_too_long_for_its_column_is_treated_as_the_orm_treats_it():
    """A chain's INSERT casts each value to its column's type, but never to a length: a
    value longer than its column is refused where the ORM's INSERT is refused (PostgreSQL),
    and stored whole where the ORM stores it (SQLite), never cut short."""
    from django.db import DatabaseError, transaction

    path = "x" * 121  # algorithm_path is max_length=120

    def outcome(write):
        try:
            with transaction.atomic():
                call = write()
        except DatabaseError as error:
            return type(error).__name__
        return Invocation.objects.get(pk=call.pk).algorithm_path

    def by_orm():
        return Invocation.objects.create(
            request_id=uuid.uuid4(), trace_id=uuid.uuid4(), algorithm_path=path,
            version_text="1.0.0", input_content_type="json")

    def by_chain():
        call = _call()
        call.algorithm_path = path
        write_chain([Insert(call)])
        return call

    expected = outcome(by_orm)
    assert expected in ("DataError", path)
    assert outcome(by_chain) == expected


def test_an_update_can_set_a_column_to_the_id_a_step_before_it_wrote():
    """``links`` on an Update: the id of a row inserted earlier in the same chain; when the
    update matches nothing, the insert before it stays (undoing it is the caller's)."""
    from billing.models import UsageRecord

    account = Account.objects.get(user=UserFactory())
    parked = _usage(_call(), account, 5)
    parked.save()
    call = _call()
    done = write_chain([Insert(call), Update(UsageRecord, parked.pk, links={"invocation_id": 0},
                                             set={"held": 6}, where={"status": "held"})])
    assert done == [call.pk, parked.pk]
    stored = UsageRecord.objects.get(pk=parked.pk)
    assert (stored.invocation_id, stored.held) == (call.pk, 6)
    other = _call()
    done = write_chain([Insert(other), Update(UsageRecord, parked.pk, links={"invocation_id": 0},
                                              set={"held": 7}, where={"status": "settled"})])
    assert done == [other.pk, None] and Invocation.objects.filter(pk=other.pk).exists()
    assert UsageRecord.objects.get(pk=parked.pk).invocation_id == call.pk


def test_a_check_may_use_a_literal_percent_sign_as_the_orm_spells_it():
    """``%%`` is a percent sign and ``%s`` a parameter, in every form a statement is sent
    (PostgreSQL's own ``$n`` placeholders for prepared statements included)."""
    account = Account.objects.get(user=UserFactory())
    Account.objects.filter(pk=account.pk).update(reserved=4)
    odd_only = dict(add={"reserved": 1}, check=("reserved %% 2 = %s", [1]))
    assert write_chain([Update(Account, account.pk, **odd_only)]) == [None]  # 4 is even
    assert row_update(Account, account.pk, add={"reserved": 1}) == 1
    assert write_chain([Update(Account, account.pk, **odd_only)]) == [account.pk]  # 5 is odd
    assert Account.objects.get(pk=account.pk).reserved == 6


@pytest.mark.services
def test_on_postgresql_a_chain_is_prepared_once_per_connection_and_errors_stay_djangos():
    """The call path's statements bind on the server and are prepared on the connection
    (PostgreSQL parses and plans them once, not on every call), with Django's own error
    types and query log still around them."""
    from django.db import IntegrityError, connection, transaction
    from django.test.utils import CaptureQueriesContext

    assert connection.vendor == "postgresql"
    account, other = (Account.objects.get(user=UserFactory()) for _ in range(2))
    with CaptureQueriesContext(connection) as queries:
        for _ in range(4):
            assert write_chain([Update(Account, account.pk, add={"reserved": 2}),
                                Update(Account, other.pk, add={"balance": 3})]
                               ) == [account.pk, other.pk]
    assert len(queries) == 4 and queries[0]["sql"].startswith('WITH s0 AS (UPDATE "billing')
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE "
                       "'WITH s0 AS (UPDATE \"billing_account\" SET \"reserved\"%%'")
        assert cursor.fetchone()[0] == 1  # one statement, however many times it ran
    assert Account.objects.get(pk=account.pk).reserved == 8
    assert Account.objects.get(pk=other.pk).balance == other.balance + 12
    call = _call()
    call.save()
    duplicate = _call()
    duplicate.request_id = call.request_id  # unique: the database refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        write_chain([Insert(duplicate)])
    # One cursor per connection, kept: still good after the error, for the next chain.
    kept = connection.connection._algostore_raw_cursor
    assert write_chain([Update(Account, account.pk, add={"reserved": -8})]) == [account.pk]
    assert connection.connection._algostore_raw_cursor is kept and not kept.closed
    assert Account.objects.get(pk=account.pk).reserved == 0


def test_a_row_reader_reads_its_fields_in_the_models_order_whatever_it_was_given():
    reader = RowReader(Invocation, "i", ("options", "depth", "trace_id"))
    assert reader.attnames == ["id", "trace_id", "depth", "options"]
    with pytest.raises(ValueError):
        RowReader(Invocation, "i", ("no_such_field",))


def test_a_model_instance_from_values_is_the_one_the_models_constructor_makes():
    from billing.models import UsageRecord

    request_id, created = uuid.uuid4(), datetime(2026, 11, 27, 1, 2, 3, tzinfo=timezone.utc)
    values = {"id": 7, "request_id": request_id, "trace_id": request_id, "algorithm_id": 3,
              "algorithm_path": "a/b", "options": {"timeout": 5}, "created_at": created}
    made = model_instance(Invocation, values)
    expected = Invocation(**values)
    fields = [found.attname for found in Invocation._meta.concrete_fields]
    assert ({name: getattr(made, name) for name in fields}
            == {name: getattr(expected, name) for name in fields})
    assert made.status == "queued" and made.depth == 0 and made.result is None
    assert made.pk == 7 and made._state.adding and made._state.db is None
    other = model_instance(Invocation, {})
    assert other.options == {} and other.options is not made.options  # fresh defaults
    assert other.request_id != request_id  # a callable default is called per instance
    usage = model_instance(UsageRecord, {"id": 2, "held": 10, "payer_id": 4})
    assert (usage.pk, usage.held, usage.payer_id, usage.royalty) == (2, 10, 4, 0)
    with pytest.raises(TypeError, match="algorithm"):
        model_instance(Invocation, {"algorithm": None})  # attnames only


def test_values_are_converted_exactly_as_the_orm_converts_them():
    """Plain fields skip their conversion where it would give the value back as it is (or
    wrapped in its column's type, as Django does for integers on PostgreSQL): the values,
    and their types, are the ORM's own, field by field, for each model the call path
    writes; a value of another type still goes through the field."""
    from django.db import connection

    from billing.models import UsageRecord

    request_id = uuid.uuid4()
    call = model_instance(Invocation, {
        "request_id": request_id, "trace_id": request_id, "algorithm_path": "a/b",
        "version_text": "1.0.0", "input_content_type": "json", "input_bytes": 7,
        "depth": 2, "queue_ms": 1.5, "options": {"timeout": 3}, "api_key_id": 5})
    usage = model_instance(UsageRecord, {
        "request_id": request_id, "trace_id": request_id, "held": 10 ** 15, "royalty": 3,
        "billable": True, "cap_keys": [1, 2], "algorithm_path": "a/b"})
    for instance in (call, usage):
        orm = [found.get_db_prep_save(found.pre_save(instance, True), connection)
               for found in Insert(instance).fields()]
        ours = Insert(instance).values()
        for found, theirs, mine in zip(Insert(instance).fields(), orm, ours):
            if found.name in ("created_at", "updated_at", "options", "cap_keys"):
                continue  # the time of each pre_save; a new JSON adapter each time
            assert (type(mine), mine) == (type(theirs), theirs), found.name
    step = Update(Invocation, call.pk, set={"output_bytes": 9, "status": "succeeded",
                                            "run_ms": 2.5, "depth": True})
    field = Invocation._meta.get_field
    assert [(type(value), value) for value in step.params()] == [
        (type(expected), expected) for expected in (
            field(name).get_db_prep_save(value, connection)
            for name, value in step.set.items())]
    assert step.params()[-1] == 1  # True for a number: converted by the field, as ever


def test_a_chain_step_returns_an_expression_read_from_the_row_as_it_wrote_it():
    """``returning``: what the row holds after the step (here the balance left besides the
    holds), None where the step changed nothing, did not run or matched nothing."""
    account = Account.objects.get(user=UserFactory())
    Account.objects.filter(pk=account.pk).update(balance=100, reserved=30)
    hold = Update(Account, account.pk, add={"reserved": 20},
                  check=("balance >= reserved + %s", [20]), returning="balance - reserved")
    other = Update(Account, account.pk, add={"reserved": 0}, after=None,
                   where={"kind": ()}, returning="balance - reserved")
    assert write_chain([hold, other]) == [account.pk, None]
    assert (hold.returned, other.returned) == (50, None)
    too_much = Update(Account, account.pk, add={"reserved": 60},
                      check=("balance >= reserved + %s", [60]), returning="balance - reserved")
    after_it = Update(Account, account.pk, add={"reserved": 1}, returning="reserved")
    assert write_chain([too_much, after_it]) == [None, None]
    assert (too_much.returned, after_it.returned) == (None, None)
    assert write_chain([hold]) == [account.pk] and hold.returned == 30  # written again
    account.refresh_from_db()
    assert (account.balance, account.reserved) == (100, 70)
    with pytest.raises(ValueError):
        write_chain([Update(Account, None, add={"reserved": 1}, where={"kind": "user"},
                            returning="reserved")])
