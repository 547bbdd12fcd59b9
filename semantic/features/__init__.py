"""Features: values per entity key as of a point in time, as sqlglot trees."""
