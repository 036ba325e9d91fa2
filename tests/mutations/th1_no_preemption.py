"""TH1: threads that are never preempted (a switch interval of 1,000 s) cannot interleave an update."""
import sys


def pytest_configure(config):
    sys.setswitchinterval(1000.0)
