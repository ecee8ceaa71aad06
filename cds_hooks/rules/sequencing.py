"""Regimen selection and sequencing (clinical reference Part B5, rules 38-45)."""
