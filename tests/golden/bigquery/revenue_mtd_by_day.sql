-- query: revenue_mtd_by_day
-- dialect: bigquery
-- request: metrics=order.revenue_mtd; dimensions=time:day
WITH `order_series` /* Aggregate order per period: order__revenue */ AS (
  SELECT
    CAST(`order`.ordered_at AS DATE) AS `time__day`,
    SUM(IF(`order`.status <> 'cancelled', `order`.amount, NULL)) AS `order__revenue`
  FROM orders AS `order`
  GROUP BY
    1
), `order_windows` /* Accumulate order: order__revenue_mtd */ AS (
  SELECT
    `time__day`,
    CASE
      WHEN NOT `time__day` IS NULL
      THEN SUM(`order__revenue`) OVER (
        PARTITION BY `time__day` IS NULL, CAST(DATE_TRUNC(`time__day`, MONTH) AS DATE)
        ORDER BY `time__day` IS NULL, `time__day`
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
      )
    END AS `order__revenue_mtd`
  FROM `order_series`
)
SELECT
  `time__day`,
  `order__revenue_mtd` AS `order__revenue_mtd`
FROM `order_windows`
