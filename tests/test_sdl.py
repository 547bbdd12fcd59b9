"""schema.graphql is the printed schema of the example model (typed by its warehouse, as `serve` types it), and
introspection documents every model node."""

from __future__ import annotations

from pathlib import Path

from api.names import camel, pascal
from api.schema import build_schema
from semantic.catalog import read_catalog
from semantic.execute import SqlWarehouse
from semantic.loader import load
from semantic.types import with_column_types

ROOT = Path(__file__).resolve().parents[1]


def test_schema_graphql_is_current(duckdb_path: Path) -> None:
    """Regenerate with: semantic schema examples/shop > schema.graphql (the example's data has the same column
    types at every size)."""
    model = load(ROOT / "examples" / "shop")
    warehouse = SqlWarehouse(f"duckdb:///{duckdb_path}")
    try:
        model = with_column_types(model, read_catalog(model, warehouse).types())
    finally:
        warehouse.close()
    printed = build_schema(model).as_str()
    assert (ROOT / "schema.graphql").read_text().strip() == printed.strip()


def test_every_entity_dimension_metric_and_feature_is_described() -> None:
    model = load(ROOT / "examples" / "shop")
    schema = build_schema(model)._schema
    for entity in model.entities.values():
        row = schema.type_map[pascal(entity.name)]
        assert row.description == entity.description
        for dim in entity.dimensions.values():
            assert dim.description and dim.description in row.fields[camel(dim.name)].description
        for metric in entity.metrics.values():
            assert metric.description and row.fields[camel(metric.name)].description == metric.description
        if entity.features:
            features = schema.type_map[f"{pascal(entity.name)}Features"]
            for feature in entity.features.values():
                assert feature.description and features.fields[camel(feature.name)].description == feature.description
        assert camel(entity.name) in schema.query_type.fields


def test_introspection_describes_every_type_field_argument_and_enum_value() -> None:
    """Through introspection, as a client sees it: every element carries a description."""
    schema = build_schema(load(ROOT / "examples" / "shop"))
    types = schema.execute_sync("""{ __schema { types { name description
        fields { name description args { name description } }
        inputFields { name description } enumValues { name description } } } }""").data["__schema"]["types"]
    elements: list[tuple[str, str | None]] = []
    for kind in types:
        if kind["name"].startswith("__"):
            continue
        elements.append((kind["name"], kind["description"]))
        for field in kind["fields"] or []:
            elements.append((f"{kind['name']}.{field['name']}", field["description"]))
            elements += [(f"{kind['name']}.{field['name']}({a['name']})", a["description"]) for a in field["args"]]
        elements += [(f"{kind['name']}.{f['name']}", f["description"]) for f in kind["inputFields"] or []]
        elements += [(f"{kind['name']}.{v['name']}", v["description"]) for v in kind["enumValues"] or []]
    missing = [name for name, description in elements if not description]
    assert len(elements) > 400 and missing == [], f"{len(missing)} of {len(elements)} undescribed: {missing[:20]}"
