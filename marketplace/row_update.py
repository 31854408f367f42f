"""The call path's writes, their SQL built once per shape: one conditional UPDATE of a row
(``row_update``), and a chain of writes that each happen only if the one they follow
changed a row (``write_chain``), sent to PostgreSQL as one statement.

Through the ORM each write builds a query, resolves its filters and expressions and
compiles them again (about two thirds of a millisecond of CPU apiece, more than the
statement itself), and a transaction of several writes is several round trips plus BEGIN
and COMMIT. Here the statement's text is built from the models' own fields once per shape
and reused, and each value goes through its field's own ``get_db_prep_save``, as the ORM
would convert it.

A chain on PostgreSQL is one statement of data-modifying CTEs (an error undoes every step),
each step reading the one it follows (``RETURNING``), which also orders them and their row
locks (a step that changes several rows is finished only at the end of the statement, so the
rows it locks after its first come last). As in any single statement, a chain must not
change the same row twice (PostgreSQL applies only one of the changes). On other databases
(SQLite) the same steps run one by one in a transaction.

But a step that changes nothing is not an error: the steps before it stay written. To undo
them then, run the chain in a transaction and raise in it.
"""
import functools
from dataclasses import dataclass, field, replace

from django.db import DEFAULT_DB_ALIAS, connections, models, transaction

_SQL: dict = {}
PREVIOUS = "previous"


@dataclass
class Update:
    """``UPDATE <table> SET f = v, ..., g = g + d, ... WHERE id = pk AND h = w ... AND check``.

    ``pk`` None: the rows ``where`` selects. ``where`` values that are tuples or lists mean
    ``IN``. ``check``: a condition in SQL on the table's own columns and its parameters,
    e.g. ``("balance >= reserved + %s", [held])``. ``after``: in a chain, the index of the
    step that must have changed a row for this one to run (the previous one by default;
    None: always). ``links``: in a chain, columns (attnames) set to the id an earlier step
    wrote (``{"derived_key_id": 0}``). ``returning``: in a chain, an expression in SQL on
    the table's own columns, read from the row as this step wrote it (into ``returned``;
    None if it changed nothing), e.g. ``"balance - reserved"``."""
    model: type
    pk: object = None
    set: dict = field(default_factory=dict)
    add: dict = field(default_factory=dict)
    where: dict = field(default_factory=dict)
    check: tuple | None = None
    after: object = PREVIOUS
    links: dict = field(default_factory=dict)
    returning: str | None = None
    returned: object = field(default=None, compare=False)

    def shape(self) -> tuple:
        return ("update", self.model, self.pk is None, tuple(self.set), tuple(self.add),
                tuple(sorted(self.links.items())),
                tuple((name, len(value) if isinstance(value, (list, tuple)) else None)
                      for name, value in self.where.items()),
                self.check[0] if self.check else None, self.returning)

    def matches_nothing(self) -> bool:
        return any(isinstance(value, (list, tuple)) and not value
                   for value in self.where.values())  # IN () (and is not SQL everywhere)

    def sql(self, db=None) -> str:
        quote, meta = (db or _db()).ops.quote_name, self.model._meta
        column = lambda name: quote(meta.get_field(name).column)  # noqa: E731
        assignments = [f"{column(name)} = %s" for name in self.set]
        assignments += [f"{column(name)} = {column(name)} + %s" for name in self.add]
        assignments += [f"{column(name)} = (SELECT id FROM s{index} LIMIT 1)"
                        for name, index in self.links.items()]
        conditions = [] if self.pk is None else [f"{quote(meta.pk.column)} = %s"]
        for name, value in self.where.items():
            conditions.append(f"{column(name)} IN ({', '.join(['%s'] * len(value))})"
                              if isinstance(value, (list, tuple)) else f"{column(name)} = %s")
        if self.check:
            conditions.append(f"({self.check[0]})")
        return (f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} "
                f"WHERE {' AND '.join(conditions or ['1 = 1'])}")

    def params(self, db=None) -> list:
        db, fields = db or _db(), self.model._meta
        params = [_save_value(self.model, name, value, db) for name, value in self.set.items()]
        params += list(self.add.values())
        if self.pk is not None:
            params.append(self.pk)
        for name, value in self.where.items():
            found = fields.get_field(name)
            values = value if isinstance(value, (list, tuple)) else [value]
            params += [found.get_db_prep_value(item, db) for item in values]
        return params + list(self.check[1] if self.check else ())


@dataclass
class Insert:
    """``INSERT`` of an unsaved model instance; once written, the instance has its id.
    ``links``: foreign key attnames to fill with the id an earlier step of the chain wrote
    (``{"invocation_id": 1}``)."""
    instance: object
    links: dict = field(default_factory=dict)
    after: object = PREVIOUS

    def fields(self) -> list:
        return list(_inserted_fields(type(self.instance)))

    def shape(self) -> tuple:
        return ("insert", type(self.instance), tuple(sorted(self.links.items())))

    def values(self, db=None) -> list:
        """Each column's value as the ORM would store it (``auto_now_add`` applied). A
        value the ORM would store as it is (``_stored_as_it_is``) is not converted again:
        field by field, the conversions were most of a call's INSERTs' client time (28
        fields: 104 against 20 µs in-process, docs/benchmarks.md)."""
        db, instance = db or _db(), self.instance
        values = []
        for found, attname, plain, wrap in _insert_plan(type(instance), db.alias):
            if attname in self.links:
                values.append(None)
                continue
            if plain is not None:
                value = getattr(instance, attname)
                if value is None or type(value) is plain:
                    values.append(value if wrap is None or value is None else wrap(value))
                    continue
            values.append(found.get_db_prep_save(found.pre_save(instance, True), db))
        return values


@functools.cache
def _insert_plan(model, alias: str) -> tuple:
    """``Insert.fields`` of ``model``, each with its attname and what ``_stored_as_it_is``
    says of it on this database."""
    return tuple((found, found.attname, *_stored_as_it_is(model, found.name, alias))
                 for found in _inserted_fields(model))


@functools.cache
def _inserted_fields(model) -> tuple:
    """The columns an INSERT of ``model`` writes: its concrete fields but its own id and
    generated ones."""
    meta = model._meta
    return tuple(found for found in meta.local_concrete_fields
                 if found is not meta.auto_field and not found.generated)


# Django's own fields (these exact classes: a subclass may convert) whose pre_save returns
# the attribute, and a value of the type they store (a probe of it).
_PLAIN = {
    **dict.fromkeys((models.IntegerField, models.BigIntegerField, models.SmallIntegerField,
                     models.PositiveIntegerField, models.PositiveBigIntegerField,
                     models.PositiveSmallIntegerField, models.AutoField,
                     models.BigAutoField, models.SmallAutoField), 7),
    **dict.fromkeys((models.CharField, models.TextField, models.SlugField), "x"),
    models.BooleanField: True, models.FloatField: 1.5}


def _plain_target(found):
    """The field whose kind of value ``found`` stores (a foreign key: its target), if it is
    one of ``_PLAIN``."""
    if type(found) in (models.ForeignKey, models.OneToOneField):
        found = found.target_field
    return found if type(found) in _PLAIN else None


def _save_value(model, name: str, value, db):
    """``get_db_prep_save(value, db)`` of the field ``name``, without its conversions where
    they would return the value as it is (or wrapped in its column's type)."""
    plain, wrap = _stored_as_it_is(model, name, db.alias)
    if plain is not None and (value is None or type(value) is plain):
        return value if wrap is None or value is None else wrap(value)
    return model._meta.get_field(name).get_db_prep_save(value, db)


@functools.cache
def _stored_as_it_is(model, name: str, alias: str) -> tuple:
    """(the type of value the field stores unchanged on this database, or wrapped in a
    subtype of it; and that subtype, or None), or (None, None). Asked of the field itself:
    on PostgreSQL (psycopg 3) Django wraps an integer in its column's own type (``Int8(7)``,
    which a prepared statement's parameters need). Only Django's own plain fields, whose
    pre_save returns the attribute (``_PLAIN``)."""
    found = model._meta.get_field(name)
    target = _plain_target(found)
    if target is None:
        return None, None
    probe = _PLAIN[type(target)]
    stored, plain = found.get_db_prep_save(probe, connections[alias]), type(probe)
    if type(stored) is plain and stored == probe:
        return plain, None
    wrap = type(stored)
    if issubclass(wrap, plain) and stored == probe and type(wrap(probe)) is wrap:
        return plain, wrap
    return None, None


def row_update(model, pk, *, set: dict | None = None, add: dict | None = None,
               where: dict | None = None) -> int:
    """One ``Update`` of the row ``pk``. Returns the rows changed (0 or 1)."""
    step = Update(model, pk, set=set or {}, add=add or {}, where=where or {})
    if not step.set and not step.add:
        raise ValueError("row_update needs something to set or add.")
    if step.matches_nothing():
        return 0
    db = _db()
    return _execute(db, _cached(step.shape(), lambda: step.sql(db)), step.params(db))


def _db():
    """The default database's connection itself. ``django.db.connection`` is a proxy that
    looks the connection up in a context-local store on every attribute read: dozens per
    chain (each field's conversion reads it), a tenth of a chain's client time."""
    return connections[DEFAULT_DB_ALIAS]


def _execute(db, sql: str, params: list, *, fetch: bool | str = False):
    """The rows changed, or with ``fetch`` the first row returned (``fetch="all"``: every
    row)."""
    if _prepared(db):  # the connection's own cursor, kept open: nothing to close
        cursor, sql = _prepared_cursor(db), _cached(("numbered", sql), lambda: _numbered(sql))
        return _run(cursor, sql, params, fetch)
    with db.cursor() as cursor:
        return _run(cursor, sql, params, fetch)


def _run(cursor, sql: str, params: list, fetch: bool | str):
    cursor.execute(sql, params)
    if fetch == "all":
        return cursor.fetchall()
    return cursor.fetchone() if fetch else cursor.rowcount


def statement_rows(sql: str, params: list) -> list[tuple]:
    """Every row of one statement written for the default database (``%s`` placeholders),
    bound on the server and prepared as the call path's writes are (``_prepared``)."""
    return _execute(_db(), sql, params, fetch="all")


class RowReader:
    """Model instances from a hand-written statement's columns (``columns``, in order),
    converted from the database's values as the ORM converts them: for reads on the call
    path, whose ORM queries are compiled anew each time (several times the statement's own
    cost). Fields not read are deferred, as with ``only``."""

    def __init__(self, model, alias: str, field_names: tuple[str, ...] | None = None):
        db, meta = _db(), model._meta
        wanted = set(field_names) if field_names else None
        # The primary key first, then in the model's order: ``from_db`` fills fields by
        # position when it is given fewer values than the model has.
        fields = [meta.pk, *(found for found in meta.concrete_fields if found is not meta.pk
                             and (wanted is None or found.name in wanted))]
        if wanted is not None and len(fields) != len(wanted) + 1:
            raise ValueError(f"Not fields of {model.__name__}: {sorted(wanted)}")
        self.model, self.fields = model, fields
        self.attnames = [found.attname for found in fields]
        self.columns = [f"{alias}.{db.ops.quote_name(found.column)}" for found in fields]
        self.converters = []
        for index, found in enumerate(fields):
            column = found.get_col(alias)
            converters = db.ops.get_db_converters(column) + found.get_db_converters(db)
            if converters:
                self.converters.append((index, column, converters))

    def instance(self, values):
        """The instance the values (this reader's columns) describe; None for a missing row
        of an outer join (no primary key)."""
        if values[0] is None:
            return None
        values, db = list(values), _db()
        for index, column, converters in self.converters:
            for converter in converters:
                values[index] = converter(values[index], column, db)
        return self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, values)


def model_instance(model, values: dict):
    """``model(**values)`` for values by attname (``algorithm_id``, not ``algorithm``), every
    other field at its default, as Django's ``__init__`` would make it but without walking
    its keyword machinery (30-37 µs an instance on the call path, several times this), and
    without sending ``pre_init``/``post_init`` (the call path's models have no receivers).
    For instances built from what a call carries, never from a form or a request."""
    fields = _defaults_of(model)
    unknown = values.keys() - fields.keys()
    if unknown:
        raise TypeError(f"{model.__name__} has no fields {sorted(unknown)}")
    instance = model.__new__(model)
    instance._state = models.base.ModelState()
    attributes = instance.__dict__
    for attname, default in fields.items():
        attributes[attname] = values[attname] if attname in values else default()
    return instance


@functools.cache
def _defaults_of(model) -> dict:
    """Each concrete field's attname and what makes its default (Django's own)."""
    return {found.attname: found._get_default for found in model._meta.concrete_fields}


def _prepared(db) -> bool:
    """On PostgreSQL with prepared statements on (``DATABASE_PREPARED``), these few
    statements are prepared once per connection (after ``prepare_threshold`` runs), and
    PostgreSQL stops parsing and planning them on every call. Django's own cursors bind
    on the client, where a statement's text differs with each value and cannot be
    prepared; parsing and planning a chain cost more than running it (0.58 against 0.22 ms
    an admission, ``docs/benchmarks.md``)."""
    return (db.vendor == "postgresql"
            and db.settings_dict["OPTIONS"].get("prepare_threshold") is not None)


def _prepared_cursor(db):
    """A cursor binding on the server with PostgreSQL's own ``$n`` placeholders (psycopg's
    ``RawCursor``: a statement's text is not parsed again on every call, as a ``%s`` one
    with more than 50 parameters would be), inside Django's wrapper: its error
    translation, its checks and its query log."""
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    raw = _raw_cursor(db.connection)
    return db.make_debug_cursor(raw) if db.queries_logged else db.make_cursor(raw)


def _raw_cursor(connection):
    """The psycopg connection's own ``RawCursor``, made once and reused by whoever holds the
    connection (a pooled connection is held by one thread at a time): a new cursor learns
    again how to send each parameter's type, a fifth of a chain's client CPU (45 parameters:
    128 against 102 µs in-process, docs/benchmarks.md). Kept on the connection itself, so
    the two go together. Between statements it holds only the last one's result (psycopg
    keeps no parameters once a statement has run): a returned id, or the few rows read."""
    import psycopg

    raw = getattr(connection, "_algostore_raw_cursor", None)
    if raw is None or raw.closed:
        raw = connection._algostore_raw_cursor = psycopg.RawCursor(connection)
    return raw


def _numbered(sql: str) -> str:
    """``%s`` placeholders as ``$1``, ``$2``, ... (and ``%%`` as ``%``)."""
    parts, number = sql.split("%%"), 0
    for index, part in enumerate(parts):
        pieces = part.split("%s")
        numbered = [pieces[0]]
        for piece in pieces[1:]:
            number += 1
            numbered.append(f"${number}{piece}")
        parts[index] = "".join(numbered)
    return "%".join(parts)


def write_chain(steps: list, *, wait_for_disk: bool = True) -> list:
    """Run ``Update`` and ``Insert`` steps in order, each only if the step it follows changed
    a row (see ``after``). Returns, per step, what it wrote (the inserted row's id, the
    updated row's id, or a true value for an update by ``where``) or None where it changed
    nothing or did not run.

    ``wait_for_disk=False`` (PostgreSQL): the chain's transaction commits without waiting
    for its WAL to reach the disk (``synchronous_commit`` off for that transaction only,
    set inside the statement; in an enclosing transaction, for all of it). A crash of the
    database server can then lose it, with whatever committed in the last moments before
    the crash, never part of it: ``commit_without_waiting_for_disk``."""
    for step in steps:
        if isinstance(step, Update) and not step.set and not step.add and not step.links:
            raise ValueError("An Update step needs something to set or add.")
        if isinstance(step, Update):
            if step.returning and step.pk is None:
                raise ValueError("An Update step returns a value only by id.")
            step.returned = None
    db = _db()
    if db.vendor == "postgresql":
        done = _chain_postgresql(db, steps, wait_for_disk)
    else:
        done = _chain_one_by_one(db, steps)
    for step, written in zip(steps, done):
        if isinstance(step, Insert) and written is not None:
            instance = step.instance
            for attname, index in step.links.items():
                setattr(instance, attname, done[index])
            instance.pk = written
            instance._state.adding, instance._state.db = False, db.alias
    return done


def _after(steps: list, index: int):
    after = steps[index].after
    return (index - 1 if index else None) if after == PREVIOUS else after


def _chain_one_by_one(db, steps: list) -> list:
    done = []
    with transaction.atomic(using=db.alias):
        for index, step in enumerate(steps):
            after = _after(steps, index)
            if after is not None and done[after] is None:
                done.append(None)
            elif isinstance(step, Insert):
                for attname, link in step.links.items():
                    setattr(step.instance, attname, done[link])
                step.instance.save(force_insert=True)
                done.append(step.instance.pk)
            elif step.matches_nothing():
                done.append(None)
            else:
                if step.links:  # the ids are known here: plain values
                    step = replace(step, links={}, set={**step.set, **{
                        name: done[index] for name, index in step.links.items()}})
                changed = _execute(db, _cached(step.shape(), lambda: step.sql(db)),
                                   step.params(db))
                done.append((step.pk if step.pk is not None else True) if changed else None)
                if changed and step.returning:  # (in the chain's transaction: as written)
                    steps[index].returned = _execute(db, (
                        f"SELECT {step.returning} FROM "
                        f"{db.ops.quote_name(step.model._meta.db_table)} WHERE "
                        f"{db.ops.quote_name(step.model._meta.pk.column)} = %s"),
                        [step.pk], fetch=True)[0]
    return done


def _chain_postgresql(db, steps: list, wait_for_disk: bool) -> list:
    shape = (wait_for_disk, *((step.shape(), _after(steps, index), step.matches_nothing()
                               if isinstance(step, Update) else False)
                              for index, step in enumerate(steps)))
    sql = _cached(shape, lambda: _chain_sql(db, steps, wait_for_disk))
    params = []
    for index, step in enumerate(steps):
        if isinstance(step, Insert):
            params += [value for found, value in zip(step.fields(), step.values(db))
                       if found.attname not in step.links]
        elif not step.matches_nothing():
            params += step.params(db)
    row = list(_execute(db, sql, params, fetch=True))
    returning = [step for step in steps if getattr(step, "returning", None)]
    for step, value in zip(returning, row[len(steps):]):
        step.returned = value
    return row[:len(steps)]


def _chain_sql(db, steps: list, wait_for_disk: bool = True) -> str:
    quote = db.ops.quote_name
    parts = [] if wait_for_disk else [f"nowait AS ({NO_WAIT_SQL})"]
    for index, step in enumerate(steps):
        after = _after(steps, index)
        pk_column = quote((step.instance if isinstance(step, Insert) else step.model)
                          ._meta.pk.column)
        if isinstance(step, Insert):
            meta = step.instance._meta
            columns, values = [], []
            for found in step.fields():
                columns.append(quote(found.column))
                link = step.links.get(found.attname)
                values.append(f"(SELECT id FROM s{link} LIMIT 1)" if link is not None
                              else f"CAST(%s AS {_cast_type(db, found)})")
            source = f" FROM s{after} LIMIT 1" if after is not None else ""
            body = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(columns)}) "
                    f"SELECT {', '.join(values)}{source} RETURNING {pk_column} AS id")
        elif step.matches_nothing():
            body = (f"SELECT {pk_column} AS id{', NULL AS returned' if step.returning else ''} "
                    f"FROM {quote(step.model._meta.db_table)} WHERE 1 = 0")
        else:
            condition = f" AND EXISTS (SELECT 1 FROM s{after})" if after is not None else ""
            extra = f", {step.returning} AS returned" if step.returning else ""
            body = f"{step.sql(db)}{condition} RETURNING {pk_column} AS id{extra}"
        parts.append(f"s{index} AS ({body})")
    columns = ", ".join([f"(SELECT id FROM s{index} LIMIT 1)" for index in range(len(steps))]
                        + [f"(SELECT returned FROM s{index} LIMIT 1)"
                           for index, step in enumerate(steps)
                           if getattr(step, "returning", None)])
    # A CTE that only reads runs only if the statement reads it.
    return f"WITH {', '.join(parts)} SELECT {columns}{'' if wait_for_disk else ' FROM nowait'}"


# is_local: this transaction only (an autocommit statement's own, or the enclosing one).
NO_WAIT_SQL = "SELECT set_config('synchronous_commit', 'off', true)"


def commit_without_waiting_for_disk() -> None:
    """Inside a transaction on PostgreSQL: it commits without waiting for its WAL to reach
    the disk. Only for writes that may be lost whole if the database server crashes
    (never in part: PostgreSQL stays consistent, and anything committed later that waited
    for the disk carries everything before it). Elsewhere, nothing."""
    db = _db()
    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            cursor.execute(NO_WAIT_SQL)


def _cast_type(db, found) -> str:
    """The type a value is cast to before it is inserted. Character fields are cast without
    their length: a cast to ``varchar(n)`` would cut a longer value silently, where the
    column refuses it (as the ORM's INSERT does)."""
    if isinstance(found, models.CharField):
        return db.ops.cast_char_field_without_max_length
    return found.cast_db_type(db)


def _cached(shape, build) -> str:
    sql = _SQL.get(shape)
    if sql is None:
        sql = _SQL[shape] = build()
    return sql
