"""Shared helpers of the experiment suite: few and small, each used by several experiments."""
