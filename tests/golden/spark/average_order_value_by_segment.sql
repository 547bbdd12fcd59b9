-- query: average_order_value_by_segment
-- dialect: spark
-- request: metrics=order.average_order_value; dimensions=customer.segment
WITH `order_metrics` /* Aggregate order: order__revenue, order__order_count */ AS (
  SELECT
    `customer`.segment AS `customer__segment`,
    SUM(`order`.amount) FILTER(WHERE
      `order`.status <> 'cancelled') AS `order__revenue`,
    COUNT(*) AS `order__order_count`
  FROM orders AS `order`
  LEFT JOIN customers AS `customer`
    ON `order`.customer_id = `customer`.customer_id
  GROUP BY
    1
)
SELECT
  `customer__segment`,
  `order__revenue` / NULLIF(`order__order_count`, 0) AS `order__average_order_value`
FROM `order_metrics`
