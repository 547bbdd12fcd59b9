-- query: aggregations_by_channel
-- dialect: bigquery
-- request: metrics=order.order_count, order.buyers, order.gross_amount, order.smallest_order, order.largest_order, order.average_amount, order.median_amount, order.p90_amount; dimensions=order.channel
WITH `order_metrics` /* Aggregate order: order__average_amount, order__buyers, order__gross_amount, order__largest_order, order__median_amount, order__order_count, order__p90_amount, order__smallest_order */ AS (
  SELECT
    `order`.channel AS `order__channel`,
    AVG(`order`.amount) AS `order__average_amount`,
    COUNT(DISTINCT `order`.customer_id) AS `order__buyers`,
    SUM(`order`.amount) AS `order__gross_amount`,
    MAX(`order`.amount) AS `order__largest_order`,
    (
      ARRAY_AGG(
        CAST(`order`.amount AS FLOAT64) IGNORE NULLS ORDER BY CAST(`order`.amount AS FLOAT64)
      )[SAFE_OFFSET(CAST(FLOOR(0.5 * (
        COUNT(CAST(`order`.amount AS FLOAT64)) - 1
      )) AS INT64))] + (
        0.5 * (
          COUNT(CAST(`order`.amount AS FLOAT64)) - 1
        ) - FLOOR(0.5 * (
          COUNT(CAST(`order`.amount AS FLOAT64)) - 1
        ))
      ) * (
        ARRAY_AGG(
          CAST(`order`.amount AS FLOAT64) IGNORE NULLS ORDER BY CAST(`order`.amount AS FLOAT64)
        )[SAFE_OFFSET(CAST(CEIL(0.5 * (
          COUNT(CAST(`order`.amount AS FLOAT64)) - 1
        )) AS INT64))] - ARRAY_AGG(
          CAST(`order`.amount AS FLOAT64) IGNORE NULLS ORDER BY CAST(`order`.amount AS FLOAT64)
        )[SAFE_OFFSET(CAST(FLOOR(0.5 * (
          COUNT(CAST(`order`.amount AS FLOAT64)) - 1
        )) AS INT64))]
      )
    ) AS `order__median_amount`,
    COUNT(*) AS `order__order_count`,
    (
      ARRAY_AGG(
        CAST(`order`.amount AS FLOAT64) IGNORE NULLS ORDER BY CAST(`order`.amount AS FLOAT64)
      )[SAFE_OFFSET(CAST(FLOOR(0.9 * (
        COUNT(CAST(`order`.amount AS FLOAT64)) - 1
      )) AS INT64))] + (
        0.9 * (
          COUNT(CAST(`order`.amount AS FLOAT64)) - 1
        ) - FLOOR(0.9 * (
          COUNT(CAST(`order`.amount AS FLOAT64)) - 1
        ))
      ) * (
        ARRAY_AGG(
          CAST(`order`.amount AS FLOAT64) IGNORE NULLS ORDER BY CAST(`order`.amount AS FLOAT64)
        )[SAFE_OFFSET(CAST(CEIL(0.9 * (
          COUNT(CAST(`order`.amount AS FLOAT64)) - 1
        )) AS INT64))] - ARRAY_AGG(
          CAST(`order`.amount AS FLOAT64) IGNORE NULLS ORDER BY CAST(`order`.amount AS FLOAT64)
        )[SAFE_OFFSET(CAST(FLOOR(0.9 * (
          COUNT(CAST(`order`.amount AS FLOAT64)) - 1
        )) AS INT64))]
      )
    ) AS `order__p90_amount`,
    MIN(`order`.amount) AS `order__smallest_order`
  FROM orders AS `order`
  GROUP BY
    1
)
SELECT
  `order__channel`,
  `order__average_amount` AS `order__average_amount`,
  `order__buyers` AS `order__buyers`,
  `order__gross_amount` AS `order__gross_amount`,
  `order__largest_order` AS `order__largest_order`,
  `order__median_amount` AS `order__median_amount`,
  `order__order_count` AS `order__order_count`,
  `order__p90_amount` AS `order__p90_amount`,
  `order__smallest_order` AS `order__smallest_order`
FROM `order_metrics`
