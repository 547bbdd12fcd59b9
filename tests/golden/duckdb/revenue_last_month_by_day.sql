-- query: revenue_last_month_by_day
-- dialect: duckdb
-- request: metrics=order.revenue_last_month; dimensions=time:day
WITH "order_series" /* Aggregate order per period: order__revenue */ AS (
  SELECT
    CAST("order".ordered_at AS DATE) AS "time__day",
    SUM("order".amount) FILTER(WHERE
      "order".status <> 'cancelled') AS "order__revenue"
  FROM orders AS "order"
  GROUP BY
    1
), "order_windows" /* Accumulate order: order__revenue_last_month */ AS (
  SELECT
    "time__day",
    CASE
      WHEN NOT "time__day" IS NULL
      THEN MAX("order__revenue") OVER (
        PARTITION BY "time__day" IS NULL
        ORDER BY "time__day"
        RANGE BETWEEN INTERVAL '1' MONTH PRECEDING AND INTERVAL '1' MONTH PRECEDING
      )
    END AS "order__revenue_last_month"
  FROM "order_series"
)
SELECT
  "time__day",
  "order__revenue_last_month" AS "order__revenue_last_month"
FROM "order_windows"
