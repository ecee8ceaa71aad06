"""Pregnancy and contraception (clinical reference Part B4, rules 35-37)."""
