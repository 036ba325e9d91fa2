"""IN2's host: a second interpreter crashes natively while the main interpreter keeps a heartbeat.

Usage: python -m harness.children.interp_crash KIND CRASH_AFTER_S HEARTBEAT_S HEARTBEATS

KIND is a harness.children.crash kind ("segfault": ctypes.string_at(0); "abort": os.abort()).
The host creates an interpreter (PEP 734, harness.interpreters.load) and, before anything
else, imports harness.children.crash inside it (so ctypes must import in a subinterpreter); a
failure there is reported (PREPARE_FAILED, then the host's result) instead of a crash. Then a
thread runs code in that interpreter that sleeps CRASH_AFTER_S, writes CRASH and the
interpreter's id with os.write (no buffer to lose), and calls crash(KIND) there. Meanwhile the
main interpreter's main thread writes BEAT per beat, HEARTBEATS beats, and reports (emit) only
if the host outlives the crash.
"""
from __future__ import annotations

import os
import sys
import threading
import time

from harness.children import emit
from harness.children.crash import BEAT, CRASH
from harness.interpreters import load

PREPARE_FAILED = "PREPARE_FAILED"


def main(kind: str, crash_after_s: float, beat_s: float, beats: int) -> None:
    module = load()
    interp = module.create()
    try:
        interp.exec("import os, time\nfrom harness.children.crash import crash")
    except Exception as exc:  # ExecutionFailed: the crash cannot even be set up in an interpreter
        os.write(1, f"{PREPARE_FAILED}\n".encode())
        emit({"prepare_error": str(exc).strip().splitlines()[-1][:300], "victim_interpreter": interp.id})
        return
    code = (f"time.sleep({crash_after_s!r})\n"
            f"os.write(1, b'{CRASH} ' + str({interp.id}).encode() + b'\\n')\n"
            f"crash({kind!r})\n")
    errors = []

    def victim():
        try:
            interp.exec(code)
        except Exception as exc:  # the crash raised instead of crashing (an unknown kind)
            errors.append(str(exc).strip().splitlines()[-1][:300])

    thread = threading.Thread(target=victim, name="interp-victim")
    thread.start()
    for _ in range(beats):
        os.write(1, f"{BEAT}\n".encode())
        time.sleep(beat_s)
    thread.join()
    interp.close()
    emit({"victim_interpreter": interp.id, "errors": errors})


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
