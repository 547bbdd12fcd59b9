-- query: revenue_by_quarter_channel
-- dialect: postgres
-- request: metrics=order.revenue; dimensions=time:quarter, order.channel
WITH "order_metrics" /* Aggregate order: order__revenue */ AS (
  SELECT
    "order".channel AS "order__channel",
    CAST(DATE_TRUNC('QUARTER', "order".ordered_at) AS DATE) AS "time__quarter",
    SUM("order".amount) FILTER(WHERE
      "order".status <> 'cancelled') AS "order__revenue"
  FROM orders AS "order"
  GROUP BY
    1,
    2
)
SELECT
  "order__channel",
  "time__quarter",
  "order__revenue" AS "order__revenue"
FROM "order_metrics"
