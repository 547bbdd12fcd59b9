-- query: enterprise_revenue_by_month
-- dialect: bigquery
-- request: metrics=order.enterprise_revenue; dimensions=time:month
WITH `order_metrics` /* Aggregate order: order__enterprise_revenue */ AS (
  SELECT
    CAST(TIMESTAMP_TRUNC(`order`.ordered_at, MONTH) AS DATE) AS `time__month`,
    SUM(
      IF(
        `order`.status <> 'cancelled' AND `customer`.segment = 'enterprise',
        `order`.amount,
        NULL
      )
    ) AS `order__enterprise_revenue`
  FROM orders AS `order`
  LEFT JOIN customers AS `customer`
    ON `order`.customer_id = `customer`.customer_id
  GROUP BY
    1
)
SELECT
  `time__month`,
  `order__enterprise_revenue` AS `order__enterprise_revenue`
FROM `order_metrics`
