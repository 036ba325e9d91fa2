"""Suite-wide options: the run's scale. Experiment fixtures live in experiments/conftest.py."""
from __future__ import annotations

from harness import scale


def pytest_addoption(parser):
    parser.addoption(
        "--scale",
        choices=scale.SCALES,
        default="quick",
        help="quick (default: the whole catalogue in about three minutes on 2 cores) "
        "or full (larger N and more rounds)",
    )


def pytest_configure(config):
    scale.set_current(config.getoption("--scale"))
