-- query: revenue_yoy_by_month
-- dialect: trino
-- request: metrics=order.revenue, order.revenue_last_year, order.revenue_growth_yoy; dimensions=time:month
WITH "order_series" /* Aggregate order per period: order__revenue */ AS (
  SELECT
    CAST(DATE_TRUNC('MONTH', "order".ordered_at) AS DATE) AS "time__month",
    SUM("order".amount) FILTER(WHERE
      "order".status <> 'cancelled') AS "order__revenue"
  FROM orders AS "order"
  GROUP BY
    1
), "order_windows" /* Accumulate order: order__revenue, order__revenue_last_year */ AS (
  SELECT
    "time__month",
    "order__revenue",
    CASE
      WHEN NOT "time__month" IS NULL
      THEN MAX("order__revenue") OVER (
        PARTITION BY "time__month" IS NULL
        ORDER BY "time__month"
        RANGE BETWEEN INTERVAL '1' YEAR PRECEDING AND INTERVAL '1' YEAR PRECEDING
      )
    END AS "order__revenue_last_year"
  FROM "order_series"
)
SELECT
  "time__month",
  "order__revenue" AS "order__revenue",
  CAST("order__revenue" AS DOUBLE) / NULLIF("order__revenue_last_year", 0) - 1 AS "order__revenue_growth_yoy",
  "order__revenue_last_year" AS "order__revenue_last_year"
FROM "order_windows"
