"""A labelled training set from the shop: will a customer order in the next 30 days?

Run: python -m examples.shop.training   (needs pandas: pip install -e ".[ml]")

The spine is every customer signed up by each of three cut-off dates, one row per customer and cut-off. Features
come from `Service.training_set`, each row as of its own cut-off, so nothing after the cut-off leaks in. The label is
a feature too, read later: `orders_last_30d` as of cut-off + 30 days counts exactly the orders in the 30 days after
the cut-off. Finally the last cut-off's customers are looked up online (`Service.features`, one `at` for all keys):
the values a model would be served equal the values it was trained on.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from examples.shop.generate import ensure
from semantic.execute import SqlWarehouse
from semantic.features.request import FeatureRequest
from semantic.loader import load
from semantic.service import Service

HERE = Path(__file__).resolve().parent
CUTOFFS = [datetime(2024, 3, 1), datetime(2024, 6, 1), datetime(2024, 9, 1)]
HORIZON = timedelta(days=30)


def spine(service: Service) -> pa.Table:
    """Every customer signed up by each cut-off, at that cut-off."""
    assert service.warehouse is not None
    customers = service.warehouse.run("SELECT customer_id, signed_up_at FROM customers ORDER BY customer_id").rows
    rows = [(key, cutoff) for cutoff in CUTOFFS for key, signed_up_at in customers if signed_up_at <= cutoff]
    return pa.table({"customer_id": pa.array([k for k, _ in rows], pa.int64()),
                     "event_timestamp": pa.array([t for _, t in rows], pa.timestamp("us"))})


def labelled(service: Service, keys_and_times: pa.Table) -> pd.DataFrame:
    """Every customer feature as of each row's cut-off, plus `will_order_30d` from the 30 days after it."""
    features = service.training_set("customer", keys_and_times, pandas=True)
    later = keys_and_times.set_column(1, "event_timestamp",
                                      pc.add(keys_and_times.column("event_timestamp"), HORIZON))
    future = service.training_set("customer", later, ["orders_last_30d"], pandas=True)
    features["will_order_30d"] = future["orders_last_30d"] > 0
    return features


def main() -> None:
    ensure(HERE / "shop.duckdb")
    model = load(HERE / "model.yaml")
    service = Service(model, SqlWarehouse(f"duckdb:///{HERE / 'shop.duckdb'}", read_only=True))
    frame = labelled(service, spine(service))

    print(f"training set: {len(frame):,} rows x {frame.shape[1]} columns "
          f"({len(CUTOFFS)} cut-offs, label: ordered in the {HORIZON.days} days after the cut-off)")
    by_cutoff = frame.groupby("event_timestamp")["will_order_30d"].agg(["size", "mean"])
    for cutoff, (size, rate) in by_cutoff.iterrows():
        print(f"  {cutoff:%Y-%m-%d}: {size:>6,} customers, {rate:6.1%} ordered in the next {HORIZON.days} days")
    recent = frame["orders_last_30d"] > 0
    print(f"  ordered in the 30 days before: {frame[recent]['will_order_30d'].mean():.1%} order again; "
          f"did not: {frame[~recent]['will_order_30d'].mean():.1%}")
    print("  mean feature by label:")
    means = frame.groupby("will_order_30d")[["orders_last_30d", "revenue_last_90d", "views_last_7d"]].mean()
    print("    " + means.round(2).to_string().replace("\n", "\n    "))
    print(f"  integer columns stay integers: orders_7d is {frame['orders_7d'].dtype} with "
          f"{frame['orders_7d'].isna().sum():,} nulls")

    keys = frame.loc[frame["event_timestamp"] == CUTOFFS[-1], "customer_id"].head(1000).tolist()
    online = service.features(FeatureRequest.create(model, "customer", keys, None, CUTOFFS[-1])).records()
    trained = service.training_set("customer", pa.table({"customer_id": keys,
                                                         "event_timestamp": [CUTOFFS[-1]] * len(keys)})).to_pylist()
    agree = all(same(served[name], row[name]) for served, row in zip(online, trained, strict=True) for name in served)
    print(f"online lookup of {len(keys):,} customers at {CUTOFFS[-1]:%Y-%m-%d}: "
          f"{'the same values as the training set' if agree else 'DIFFERENT from the training set'}")


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a))
    return a == b

if __name__ == "__main__":
    main()
