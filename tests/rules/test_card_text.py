"""The helpers that put drug names into card text: each name once, in one order, however the record repeats it."""
from __future__ import annotations

from types import SimpleNamespace

from cds_hooks.rules.base import ingredient_names, joined, listed, names_of


def test_names_are_joined_once_each_in_sorted_order():
    assert joined(["trastuzumab", "Perjeta", "trastuzumab"]) == "Perjeta and trastuzumab"
    assert joined([]) == ""


def test_orders_and_exposures_are_named_by_their_text():
    items = [SimpleNamespace(text="Herzuma"), SimpleNamespace(text="Perjeta"), SimpleNamespace(text="Herzuma")]
    assert names_of(items) == "Herzuma and Perjeta"
    assert names_of(iter(items)) == "Herzuma and Perjeta"  # a generator is read once
    assert listed(items) == "Herzuma, Perjeta, Herzuma"  # in the orders' own order, as written


def test_ingredients_are_named_by_their_display():
    assert ingredient_names(["paclitaxel", "docetaxel"]) == "docetaxel and paclitaxel"
