"""An ML pipeline's view of the shop: feature values per customer as of a point in time, into a DataFrame.

Run: python -m examples.shop.features   (needs pandas: pip install -e ".[ml]")
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from examples.shop.generate import ensure
from semantic.execute import SqlWarehouse
from semantic.features.request import FeatureRequest
from semantic.loader import load
from semantic.service import Service

HERE = Path(__file__).resolve().parent


def customer_features(keys: list[int], at: datetime) -> pd.DataFrame:
    """Every feature of `customer` for `keys` as known at `at`: one row per key, in order."""
    model = load(HERE / "model.yaml")
    ensure(HERE / "shop.duckdb")
    service = Service(model, SqlWarehouse(f"duckdb:///{HERE / 'shop.duckdb'}", read_only=True))
    result = service.features(FeatureRequest.create(model, "customer", keys, None, at))
    frame = pd.DataFrame(result.rows, columns=[c.name for c in result.columns])
    for column in result.columns:  # integer features with nulls stay integers
        if column.type == "integer":
            frame[column.name] = frame[column.name].astype("Int64")
    return frame


if __name__ == "__main__":
    print(customer_features(list(range(1, 11)), datetime(2024, 6, 1)).to_string(index=False))
