"""Blood counts (clinical reference Part B3, rules 28-30)."""
