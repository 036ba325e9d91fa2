"""A CPU-bound process: pure Python spinning until killed (TH6's control, in a thread's place)."""
from __future__ import annotations


def main() -> None:
    while True:
        pass


if __name__ == "__main__":
    main()
