"""Judging rows, rates with CIs, utility (lm-eval protocol), drift, output quality, judge agreement and audit."""
