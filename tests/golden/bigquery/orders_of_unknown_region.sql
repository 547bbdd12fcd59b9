-- query: orders_of_unknown_region
-- dialect: bigquery
-- request: metrics=order.order_count; dimensions=order.channel; where=customer.region IS NULL
WITH `order_metrics` /* Aggregate order: order__order_count */ AS (
  SELECT
    `order`.channel AS `order__channel`,
    COUNT(*) AS `order__order_count`
  FROM orders AS `order`
  LEFT JOIN customers AS `customer`
    ON `order`.customer_id = `customer`.customer_id
  WHERE
    `customer`.region IS NULL
  GROUP BY
    1
)
SELECT
  `order__channel`,
  `order__order_count` AS `order__order_count`
FROM `order_metrics`
