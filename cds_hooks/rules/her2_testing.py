"""HER2 eligibility (clinical reference Part B1, rules 9-11)."""
