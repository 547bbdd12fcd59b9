-- query: enterprise_revenue_by_month
-- dialect: postgres
-- request: metrics=order.enterprise_revenue; dimensions=time:month
WITH "order_metrics" /* Aggregate order: order__enterprise_revenue */ AS (
  SELECT
    CAST(DATE_TRUNC('MONTH', "order".ordered_at) AS DATE) AS "time__month",
    SUM("order".amount) FILTER(WHERE
      "order".status <> 'cancelled' AND "customer".segment = 'enterprise') AS "order__enterprise_revenue"
  FROM orders AS "order"
  LEFT JOIN customers AS "customer"
    ON "order".customer_id = "customer".customer_id
  GROUP BY
    1
)
SELECT
  "time__month",
  "order__enterprise_revenue" AS "order__enterprise_revenue"
FROM "order_metrics"
