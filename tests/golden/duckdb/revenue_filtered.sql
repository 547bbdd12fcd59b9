-- query: revenue_filtered
-- dialect: duckdb
-- request: metrics=order.revenue; dimensions=order.status; where=customer.region IN ('EU', 'NA') AND "time:day" BETWEEN '2024-03-01' AND '2024-06-30' AND order.channel LIKE 'w%' AND NOT customer.segment IS NULL
WITH "order_metrics" /* Aggregate order: order__revenue */ AS (
  SELECT
    "order".status AS "order__status",
    SUM("order".amount) FILTER(WHERE
      "order".status <> 'cancelled') AS "order__revenue"
  FROM orders AS "order"
  LEFT JOIN customers AS "customer"
    ON "order".customer_id = "customer".customer_id
  WHERE
    "customer".region IN ('EU', 'NA')
    AND (
      "order".ordered_at >= CAST('2024-03-01 00:00:00' AS TIMESTAMP)
      AND "order".ordered_at < CAST('2024-07-01 00:00:00' AS TIMESTAMP)
    )
    AND "order".channel LIKE 'w%'
    AND NOT "customer".segment IS NULL
  GROUP BY
    1
)
SELECT
  "order__status",
  "order__revenue" AS "order__revenue"
FROM "order_metrics"
