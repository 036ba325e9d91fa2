"""IO4: the "blocked" reader busy-polls instead (SlowDevice.read_into becomes poll_into): its CPU is not free."""
from harness.devices import SlowDevice


def pytest_configure(config):
    SlowDevice.read_into = SlowDevice.poll_into
