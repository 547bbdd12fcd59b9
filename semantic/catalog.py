"""What the warehouse holds for each entity: its relation's real name and its columns with their types.

Read from `information_schema.columns` (SQLAlchemy reflection is broken on duckdb-engine), one statement per
schema the model names; an entity defined by `sql:` is described by running its query with `LIMIT 0`. The data
checks (`checks.py`) and the output-type rule (`types.py`) both read warehouse column types from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import sqlglot
from sqlglot import exp

from semantic.errors import SemanticError, did_you_mean
from semantic.execute import Warehouse
from semantic.model import Entity, Model
from semantic.sql.render import render


@dataclass(frozen=True)
class Column:
    name: str  # as the warehouse spells it
    type: exp.DataType | None  # None: the warehouse did not say (a `sql:` entity on a row-based driver)


@dataclass(frozen=True)
class Relation:
    """An entity's rows in the warehouse: `source` (a quoted table, or the entity's query as a subquery) and its
    columns keyed by case-folded name."""

    source: exp.Expr
    columns: dict[str, Column]

    def column(self, name: str) -> Column | None:
        return self.columns.get(name.casefold())


@dataclass
class Catalog:
    """Per entity name: its relation, or why none was found (a missing table, a failing query)."""

    relations: dict[str, Relation] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def types(self) -> dict[str, dict[str, exp.DataType]]:
        """Entity -> case-folded column -> type, where the warehouse told it (for `Model.column_types`)."""
        return {name: {key: c.type for key, c in relation.columns.items() if c.type is not None}
                for name, relation in self.relations.items()}

    def column_type(self, entity: str, column: str) -> exp.DataType | None:
        """The warehouse type of `entity`'s column, or None when unknown."""
        relation = self.relations.get(entity)
        found = relation.column(column) if relation is not None else None
        return found.type if found is not None else None


def _ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def _schema_columns(warehouse: Warehouse, schema: str | None) -> dict[str, tuple[str, list[Column]]]:
    """Every table of one schema (the current one when None): case-folded name -> (real name, columns)."""
    wanted = exp.Literal.string(schema) if schema is not None else exp.CurrentSchema()
    query = (exp.select("table_name", "column_name", "data_type", "numeric_precision", "numeric_scale")
             .from_(exp.table_("columns", db="information_schema"))
             .where(exp.and_(exp.column("table_schema").eq(wanted),
                             exp.column("table_catalog").eq(exp.Anonymous(this="current_database")))))
    query = query.order_by("table_name", "ordinal_position")
    tables: dict[str, tuple[str, list[Column]]] = {}
    for table, column, kind, precision, scale in warehouse.run(render(query, warehouse.dialect)).rows:
        tables.setdefault(str(table).casefold(), (str(table), []))[1].append(
            Column(str(column), _data_type(str(kind), precision, scale, warehouse.dialect)))
    return tables


def _data_type(text: str, precision: object, scale: object, dialect: str) -> exp.DataType | None:
    try:
        kind = exp.DataType.build(text, dialect=dialect)
    except Exception:  # noqa: BLE001 - a type sqlglot cannot read is simply unknown
        return None
    if kind.this == exp.DataType.Type.DECIMAL and not kind.expressions and isinstance(scale, int):
        kind = exp.DataType.build(f"DECIMAL({precision or 38}, {scale})")
    return kind


_ARROW = ((pa.types.is_boolean, "BOOLEAN"), (pa.types.is_integer, "BIGINT"), (pa.types.is_floating, "DOUBLE"),
          (pa.types.is_date, "DATE"), (pa.types.is_string, "TEXT"), (pa.types.is_large_string, "TEXT"))


def arrow_type(kind: pa.DataType) -> exp.DataType | None:
    """The SQL type of an Arrow column (a query's answer), or None for types the model has no use for."""
    if pa.types.is_timestamp(kind):
        return exp.DataType.build("TIMESTAMPTZ" if kind.tz else "TIMESTAMP")
    if pa.types.is_decimal(kind):
        return exp.DataType.build(f"DECIMAL({kind.precision}, {kind.scale})")
    return next((exp.DataType.build(name) for test, name in _ARROW if test(kind)), None)


def _query_columns(model: Model, entity: Entity, warehouse: Warehouse) -> Relation:
    source = exp.Subquery(this=sqlglot.parse_one(entity.sql or "", read=model.dialect))
    probe = render(exp.select("*").from_(exp.alias_(source.copy(), _ident("q"), table=True)).limit(0),
                   warehouse.dialect)
    answer = warehouse.arrow(probe)
    if answer.num_columns:
        columns = [Column(f.name, arrow_type(f.type)) for f in answer.schema]
    else:  # a row-based driver answers no rows with no Arrow schema: the names alone
        columns = [Column(name, None) for name in warehouse.run(probe).names]
    return Relation(source, {c.name.casefold(): c for c in columns})


def read_catalog(model: Model, warehouse: Warehouse) -> Catalog:
    """The relation of every entity of `model` that the warehouse holds; the others under `missing`, with why.

    Raises:
        WarehouseError: the warehouse cannot be reached or cannot answer the metadata query.
    """
    catalog = Catalog()
    schemas: dict[str | None, dict[str, tuple[str, list[Column]]]] = {}
    for entity in model.entities.values():
        if entity.sql is not None:
            try:
                catalog.relations[entity.name] = _query_columns(model, entity, warehouse)
            except (SemanticError, sqlglot.errors.ParseError) as error:
                catalog.missing[entity.name] = f"its `sql` fails on the warehouse: {error}"
            continue
        if entity.table is None:
            continue
        table = exp.to_table(entity.table, dialect=model.dialect)
        schema = table.db or None
        if schema not in schemas:
            schemas[schema] = _schema_columns(warehouse, schema)
        found = schemas[schema].get(table.name.casefold())
        if found is None:
            where = f"schema {schema!r}" if schema else "the current schema"
            names = [real for real, _ in schemas[schema].values()]
            catalog.missing[entity.name] = (f"table {entity.table!r} does not exist in {where} of the warehouse."
                                            f"{did_you_mean(table.name, names)}")
            continue
        real, columns = found
        source = exp.Table(this=_ident(real), db=_ident(schema) if schema else None)
        catalog.relations[entity.name] = Relation(source, {c.name.casefold(): c for c in columns})
    return catalog
