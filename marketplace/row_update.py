"""One conditional UPDATE of a row by id, its SQL built once per shape.

The call path closes every call with a few single-row UPDATEs. Through the ORM each one
builds a query, resolves its filters and expressions and compiles them again (about two
thirds of a millisecond of the worker's CPU apiece, more than the statement itself); here
the statement's text is built from the model's own fields once per shape and reused, and
each value goes through its field's own ``get_db_prep_save``, as the ORM would convert it.
The same SQL runs on PostgreSQL and SQLite.
"""
from django.db import connection

_SQL: dict = {}


def row_update(model, pk, *, set: dict | None = None, add: dict | None = None,
               where: dict | None = None) -> int:
    """``UPDATE <table> SET f = v, ..., g = g + d, ... WHERE id = pk AND h = w ...``;
    ``where`` values that are tuples or lists mean ``IN``. Returns the rows changed (0 or 1).
    """
    set, add, where = set or {}, add or {}, where or {}
    if not set and not add:
        raise ValueError("row_update needs something to set or add.")
    if any(isinstance(value, (list, tuple)) and not value for value in where.values()):
        return 0  # IN () matches nothing (and is not SQL everywhere)
    shape = (model, tuple(set), tuple(add),
             tuple((name, len(value) if isinstance(value, (list, tuple)) else None)
                   for name, value in where.items()))
    sql = _SQL.get(shape)
    if sql is None:
        sql = _SQL[shape] = _build(model, shape)
    fields = model._meta
    params = [fields.get_field(name).get_db_prep_save(value, connection)
              for name, value in set.items()]
    params += [value for value in add.values()]
    params.append(pk)
    for name, value in where.items():
        field = fields.get_field(name)
        values = value if isinstance(value, (list, tuple)) else [value]
        params += [field.get_db_prep_value(item, connection) for item in values]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _build(model, shape) -> str:
    _model, set_names, add_names, where_shape = shape
    quote, meta = connection.ops.quote_name, model._meta
    column = lambda name: quote(meta.get_field(name).column)  # noqa: E731
    assignments = [f"{column(name)} = %s" for name in set_names]
    assignments += [f"{column(name)} = {column(name)} + %s" for name in add_names]
    conditions = [f"{quote(meta.pk.column)} = %s"]
    for name, count in where_shape:
        conditions.append(f"{column(name)} = %s" if count is None
                          else f"{column(name)} IN ({', '.join(['%s'] * count)})")
    return (f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} "
            f"WHERE {' AND '.join(conditions)}")
