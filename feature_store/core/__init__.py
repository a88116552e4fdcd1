"""Pure computation both jobs run: columns, plans, aggregation kinds, windows, change rows."""
