"""SQL generation: Plan -> sqlglot tree -> SQL text in a dialect."""
