-- query: big_customers
-- dialect: spark
-- request: metrics=order.revenue; dimensions=customer.customer_id; where=order.revenue > 1000
WITH `order_metrics` /* Aggregate order: order__revenue */ AS (
  SELECT
    `customer`.customer_id AS `customer__customer_id`,
    SUM(`order`.amount) FILTER(WHERE
      `order`.status <> 'cancelled') AS `order__revenue`
  FROM orders AS `order`
  LEFT JOIN customers AS `customer`
    ON `order`.customer_id = `customer`.customer_id
  GROUP BY
    1
)
SELECT
  `customer__customer_id`,
  `order__revenue` AS `order__revenue`
FROM `order_metrics`
WHERE
  `order__revenue` > 1000
