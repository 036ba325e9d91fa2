"""Suite-wide options: the run's scale, and result storage kept apart per environment.

The suite's fixtures and hooks (evidence, loops, the leak guard, the run's record) are the
plugin harness/plugin.py, registered here.
"""
from __future__ import annotations

import pytest

from harness import environment, scale

pytest_plugins = ["harness.plugin"]


def pytest_addoption(parser):
    parser.addoption(
        "--scale",
        choices=scale.SCALES,
        default="quick",
        help="quick (default: the whole catalogue in about a minute on 2 cores) "
        "or full (larger N and more rounds)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    scale.set_current(config.getoption("--scale"))
    # pytest-benchmark names its storage folder by machine id (3.13 and 3.13t share one) and
    # offers no hook for it, so each environment gets a folder of its own under the storage
    # given (results/ by default). pytest-benchmark reads the option after this hook.
    # A full-scale run goes one folder further down (FULL_SCALE_FOLDER), so that a scaling run sits
    # apart from the quick runs whose verdicts the report publishes, and never replaces one.
    storage = getattr(config.option, "benchmark_storage", None)
    slug = environment.slug(environment.key())
    if storage and not storage.rstrip("/").endswith(slug):
        below = f"{scale.FULL_SCALE_FOLDER}/" if scale.current() == "full" else ""
        config.option.benchmark_storage = f"{storage.rstrip('/')}/{below}{slug}"
