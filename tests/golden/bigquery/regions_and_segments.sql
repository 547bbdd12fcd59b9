-- query: regions_and_segments
-- dialect: bigquery
-- request: metrics=-; dimensions=customer.region, customer.segment
WITH `customer_values` /* Aggregate customer: distinct values */ AS (
  SELECT
    `customer`.region AS `customer__region`,
    `customer`.segment AS `customer__segment`
  FROM customers AS `customer`
  GROUP BY
    1,
    2
)
SELECT
  `customer__region`,
  `customer__segment`
FROM `customer_values`
