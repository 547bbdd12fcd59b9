-- query: revenue_rolling_3m_by_month
-- dialect: spark
-- request: metrics=order.revenue_rolling_3m; dimensions=time:month
WITH `order_series` /* Aggregate order per period: order__revenue */ AS (
  SELECT
    CAST(DATE_TRUNC('MONTH', `order`.ordered_at) AS DATE) AS `time__month`,
    SUM(`order`.amount) FILTER(WHERE
      `order`.status <> 'cancelled') AS `order__revenue`
  FROM orders AS `order`
  GROUP BY
    1
), `order_windows` /* Accumulate order: order__revenue_rolling_3m */ AS (
  SELECT
    `time__month`,
    CASE
      WHEN NOT `time__month` IS NULL
      THEN SUM(`order__revenue`) OVER (
        PARTITION BY `time__month` IS NULL
        ORDER BY `time__month` NULLS LAST
        RANGE BETWEEN INTERVAL '2' MONTH PRECEDING AND CURRENT ROW
      )
    END AS `order__revenue_rolling_3m`
  FROM `order_series`
)
SELECT
  `time__month`,
  `order__revenue_rolling_3m` AS `order__revenue_rolling_3m`
FROM `order_windows`
