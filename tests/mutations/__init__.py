"""Mutations: pytest plugins that make one claim false in the measured world without editing its experiment.

Each module patches one harness function or library setting when pytest configures, before the
experiments are imported; tests/test_mutations.py runs one claim's experiment with it, in a
subprocess, and asserts that the verdict changed.
"""
