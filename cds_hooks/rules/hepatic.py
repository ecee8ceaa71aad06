"""Liver (clinical reference Part B3, rules 22-27)."""
