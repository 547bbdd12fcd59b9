-- query: units_by_region
-- dialect: trino
-- request: metrics=order_item.units; dimensions=customer.region
WITH "order_item_metrics" /* Aggregate order_item: order_item__units */ AS (
  SELECT
    "customer".region AS "customer__region",
    SUM("order_item".quantity) AS "order_item__units"
  FROM order_items AS "order_item"
  INNER JOIN orders AS "order"
    ON "order_item".order_id = "order".order_id
  LEFT JOIN customers AS "customer"
    ON "order".customer_id = "customer".customer_id
  GROUP BY
    1
)
SELECT
  "customer__region",
  "order_item__units" AS "order_item__units"
FROM "order_item_metrics"
