"""A pre-imported ``stability`` command that forks one real process per corpus case.

Starting Python and importing the package costs about 1.3 s of CPU per command; a hundred
cases would spend minutes on that alone. This process imports once, then for each request
(one JSON line on stdin) forks a child that runs the real ``stability_lib.cli`` as
``python -m stability_lib.cli`` would: its own session, environment, folder, stdout and
stderr files, memory limit, exit code, and the default traceback on an uncaught exception.
It answers one JSON line per request: exit code, peak RSS of the child, seconds, timed out.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time


def _child(request: dict) -> None:
    os.setsid()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    if request.get("memory_cap_bytes"):
        import resource

        cap = request["memory_cap_bytes"]
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own stdin
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    sys.argv = ["stability", *request["argv"]]
    code = 1
    try:
        from stability_lib.cli import main

        # What `python -m stability_lib.cli` does: `raise SystemExit(main())`.
        raise SystemExit(main(request["argv"]))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:  # what the interpreter does with an uncaught exception
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def main() -> None:
    import stability_lib._pipeline  # the expensive imports, done once
    import stability_lib.cli
    import stability_lib.demo.launch  # noqa: F401

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(request)
        timed_out = threading.Event()

        def kill(pid: int = pid) -> None:
            timed_out.set()
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)

        timer = threading.Timer(request["timeout_s"], kill)
        timer.daemon = True
        timer.start()
        _, status, usage = os.wait4(pid, 0)
        timer.cancel()
        print(
            json.dumps(
                {
                    "returncode": os.waitstatus_to_exitcode(status),
                    "max_rss_kb": usage.ru_maxrss,
                    "seconds": time.monotonic() - started,
                    "timed_out": timed_out.is_set(),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
