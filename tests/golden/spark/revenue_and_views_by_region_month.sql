-- query: revenue_and_views_by_region_month
-- dialect: spark
-- request: metrics=order.revenue, page_view.views; dimensions=customer.region, time:month
WITH `order_metrics` /* Aggregate order: order__revenue */ AS (
  SELECT
    `customer`.region AS `customer__region`,
    CAST(DATE_TRUNC('MONTH', `order`.ordered_at) AS DATE) AS `time__month`,
    SUM(`order`.amount) FILTER(WHERE
      `order`.status <> 'cancelled') AS `order__revenue`
  FROM orders AS `order`
  LEFT JOIN customers AS `customer`
    ON `order`.customer_id = `customer`.customer_id
  GROUP BY
    1,
    2
), `page_view_metrics` /* Aggregate page_view: page_view__views */ AS (
  SELECT
    `customer`.region AS `customer__region`,
    CAST(DATE_TRUNC('MONTH', `page_view`.viewed_at) AS DATE) AS `time__month`,
    COUNT(*) AS `page_view__views`
  FROM page_views AS `page_view`
  LEFT JOIN customers AS `customer`
    ON `page_view`.customer_id = `customer`.customer_id
  GROUP BY
    1,
    2
), `joined` /* Stitch the entities' metrics on the dimension values */ AS (
  SELECT
    `customer__region`,
    `time__month`,
    MAX(`order__revenue`) AS `order__revenue`,
    MAX(`page_view__views`) AS `page_view__views`
  FROM (
    SELECT
      `customer__region`,
      `time__month`,
      `order__revenue`,
      (
        SELECT
          `page_view__views`
        FROM `page_view_metrics`
        WHERE
          FALSE
      ) AS `page_view__views`
    FROM `order_metrics`
    UNION ALL
    SELECT
      `customer__region`,
      `time__month`,
      (
        SELECT
          `order__revenue`
        FROM `order_metrics`
        WHERE
          FALSE
      ) AS `order__revenue`,
      `page_view__views`
    FROM `page_view_metrics`
  ) AS `stitched`
  GROUP BY
    1,
    2
)
SELECT
  `customer__region`,
  `time__month`,
  `order__revenue` AS `order__revenue`,
  `page_view__views` AS `page_view__views`
FROM `joined`
