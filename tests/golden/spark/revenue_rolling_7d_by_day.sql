-- query: revenue_rolling_7d_by_day
-- dialect: spark
-- request: metrics=order.revenue_rolling_7d; dimensions=time:day; where="time:day" >= '2024-06-01'
WITH `order_series` /* Aggregate order per period: order__revenue */ AS (
  SELECT
    CAST(`order`.ordered_at AS DATE) AS `time__day`,
    SUM(`order`.amount) FILTER(WHERE
      `order`.status <> 'cancelled') AS `order__revenue`
  FROM orders AS `order`
  GROUP BY
    1
), `order_windows` /* Accumulate order: order__revenue_rolling_7d */ AS (
  SELECT
    *
  FROM (
    SELECT
      `time__day`,
      CASE
        WHEN NOT `time__day` IS NULL
        THEN SUM(`order__revenue`) OVER (
          PARTITION BY `time__day` IS NULL
          ORDER BY `time__day` NULLS LAST
          RANGE BETWEEN 6 PRECEDING AND CURRENT ROW
        )
      END AS `order__revenue_rolling_7d`
    FROM `order_series`
  ) AS `windowed`
  WHERE
    `time__day` >= CAST('2024-06-01' AS DATE)
)
SELECT
  `time__day`,
  `order__revenue_rolling_7d` AS `order__revenue_rolling_7d`
FROM `order_windows`
