"""Nerve toxicity (clinical reference Part B3, rule 34)."""
