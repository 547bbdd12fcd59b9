-- query: orders_to_date_by_month
-- dialect: bigquery
-- request: metrics=order.orders_to_date; dimensions=time:month
WITH `order_series` /* Aggregate order per period: order__order_count */ AS (
  SELECT
    CAST(TIMESTAMP_TRUNC(`order`.ordered_at, MONTH) AS DATE) AS `time__month`,
    COUNT(*) AS `order__order_count`
  FROM orders AS `order`
  GROUP BY
    1
), `order_windows` /* Accumulate order: order__orders_to_date */ AS (
  SELECT
    `time__month`,
    CASE
      WHEN NOT `time__month` IS NULL
      THEN SUM(`order__order_count`) OVER (
        PARTITION BY `time__month` IS NULL
        ORDER BY `time__month` IS NULL, `time__month`
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
      )
    END AS `order__orders_to_date`
  FROM `order_series`
)
SELECT
  `time__month`,
  `order__orders_to_date` AS `order__orders_to_date`
FROM `order_windows`
