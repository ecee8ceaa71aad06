"""Lung toxicity: ILD and pneumonitis (clinical reference Part B3, rules 31-33)."""
