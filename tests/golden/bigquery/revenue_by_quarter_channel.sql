-- query: revenue_by_quarter_channel
-- dialect: bigquery
-- request: metrics=order.revenue; dimensions=time:quarter, order.channel
WITH `order_metrics` /* Aggregate order: order__revenue */ AS (
  SELECT
    `order`.channel AS `order__channel`,
    CAST(TIMESTAMP_TRUNC(`order`.ordered_at, QUARTER) AS DATE) AS `time__quarter`,
    SUM(IF(`order`.status <> 'cancelled', `order`.amount, NULL)) AS `order__revenue`
  FROM orders AS `order`
  GROUP BY
    1,
    2
)
SELECT
  `order__channel`,
  `time__quarter`,
  `order__revenue` AS `order__revenue`
FROM `order_metrics`
