"""pyperf's bench_async_func timing one empty await: the reference tests/test_async_harness.py checks the
suite's coroutine timing (harness.aio.bench_async) against.

    python -m harness.children.pyperf_empty_await --loop-kind asyncio --values 5 --loops 100000 -o out.json
"""
from __future__ import annotations

import pyperf

from harness.aio import new_loop


async def empty():
    pass


def main() -> None:
    runner = pyperf.Runner(processes=1, warmups=1,
                           add_cmdline_args=lambda cmd, args: cmd.extend(("--loop-kind", args.loop_kind)))
    runner.argparser.add_argument("--loop-kind", default="asyncio")
    args = runner.parse_args()
    runner.bench_async_func("empty", empty, loop_factory=lambda: new_loop(args.loop_kind))


if __name__ == "__main__":
    main()
