"""schema.graphql is the printed schema of the example model, and introspection documents every model node."""

from __future__ import annotations

from pathlib import Path

from api.names import camel, pascal
from api.schema import build_schema
from semantic.loader import load

ROOT = Path(__file__).resolve().parents[1]


def test_schema_graphql_is_current() -> None:
    """Regenerate with: semantic schema examples/shop > schema.graphql"""
    printed = build_schema(load(ROOT / "examples" / "shop")).as_str()
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
