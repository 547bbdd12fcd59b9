-- query: top_categories
-- dialect: postgres
-- request: metrics=order_item.units; dimensions=product.category; order_by=-order_item.units; limit=3; offset=1
WITH "order_item_metrics" /* Aggregate order_item: order_item__units */ AS (
  SELECT
    "product".category AS "product__category",
    SUM("order_item".quantity) AS "order_item__units"
  FROM order_items AS "order_item"
  INNER JOIN products AS "product"
    ON "order_item".product_id = "product".product_id
  GROUP BY
    1
)
SELECT
  "product__category",
  "order_item__units" AS "order_item__units"
FROM "order_item_metrics"
ORDER BY
  "order_item__units" DESC NULLS LAST
LIMIT 3
OFFSET 1
