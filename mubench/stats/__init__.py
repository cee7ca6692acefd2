"""Paired tests and comparisons across variants and seeds."""
