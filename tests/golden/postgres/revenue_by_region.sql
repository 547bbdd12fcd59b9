-- query: revenue_by_region
-- dialect: postgres
-- request: metrics=order.revenue; dimensions=customer.region
WITH "order_metrics" /* Aggregate order: order__revenue */ AS (
  SELECT
    "customer".region AS "customer__region",
    SUM("order".amount) FILTER(WHERE
      "order".status <> 'cancelled') AS "order__revenue"
  FROM orders AS "order"
  LEFT JOIN customers AS "customer"
    ON "order".customer_id = "customer".customer_id
  GROUP BY
    1
)
SELECT
  "customer__region",
  "order__revenue" AS "order__revenue"
FROM "order_metrics"
