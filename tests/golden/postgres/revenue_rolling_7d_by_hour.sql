-- query: revenue_rolling_7d_by_hour
-- dialect: postgres
-- request: metrics=order.revenue_rolling_7d; dimensions=time:hour; where="time:day" >= '2024-06-01'
WITH "order_series" /* Aggregate order per period: order__revenue */ AS (
  SELECT
    DATE_TRUNC('HOUR', "order".ordered_at) AS "time__hour",
    SUM("order".amount) FILTER(WHERE
      "order".status <> 'cancelled') AS "order__revenue"
  FROM orders AS "order"
  GROUP BY
    1
), "order_windows" /* Accumulate order: order__revenue_rolling_7d */ AS (
  SELECT
    *
  FROM (
    SELECT
      "time__hour",
      CASE
        WHEN NOT "time__hour" IS NULL
        THEN SUM("order__revenue") OVER (
          PARTITION BY "time__hour" IS NULL
          ORDER BY "time__hour"
          RANGE BETWEEN INTERVAL '167 HOUR' PRECEDING AND CURRENT ROW
        )
      END AS "order__revenue_rolling_7d"
    FROM "order_series"
  ) AS "windowed"
  WHERE
    "time__hour" >= CAST('2024-06-01' AS DATE)
)
SELECT
  "time__hour",
  "order__revenue_rolling_7d" AS "order__revenue_rolling_7d"
FROM "order_windows"
