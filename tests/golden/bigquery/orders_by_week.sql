-- query: orders_by_week
-- dialect: bigquery
-- request: metrics=order.order_count; dimensions=time:week
WITH `order_metrics` /* Aggregate order: order__order_count */ AS (
  SELECT
    CAST(TIMESTAMP_TRUNC(`order`.ordered_at, WEEK(MONDAY)) AS DATE) AS `time__week`,
    COUNT(*) AS `order__order_count`
  FROM orders AS `order`
  GROUP BY
    1
)
SELECT
  `time__week`,
  `order__order_count` AS `order__order_count`
FROM `order_metrics`
