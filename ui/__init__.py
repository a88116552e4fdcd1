"""`feature-store ui`: a page with the registry, freshness, dead letters and lookups."""
