-- query: revenue_rolling_3m_by_month
-- dialect: bigquery
-- request: metrics=order.revenue_rolling_3m; dimensions=time:month
WITH `order_series` /* Aggregate order per period: order__revenue */ AS (
  SELECT
    CAST(TIMESTAMP_TRUNC(`order`.ordered_at, MONTH) AS DATE) AS `time__month`,
    SUM(IF(`order`.status <> 'cancelled', `order`.amount, NULL)) AS `order__revenue`
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
        ORDER BY DATE_DIFF(`time__month`, CAST('1970-01-01' AS DATE), MONTH)
        RANGE BETWEEN 2 PRECEDING AND CURRENT ROW
      )
    END AS `order__revenue_rolling_3m`
  FROM `order_series`
)
SELECT
  `time__month`,
  `order__revenue_rolling_3m` AS `order__revenue_rolling_3m`
FROM `order_windows`
