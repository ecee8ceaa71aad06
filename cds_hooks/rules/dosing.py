"""Product identity and dosing (clinical reference Part B1, rules 1-8)."""
