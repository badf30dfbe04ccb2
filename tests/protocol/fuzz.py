"""Depth for the decoder fuzzers: thousands of cases per decoder on every run."""

from hypothesis import settings

FUZZ = settings(max_examples=2000, deadline=None)
