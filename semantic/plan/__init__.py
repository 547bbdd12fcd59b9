"""Planning: which entity aggregates what, along which joins, with which filters before and after aggregation."""
