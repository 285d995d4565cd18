"""``python -m emulator [--seed FILE] [--port N] [--state-dir DIR]``.

The first stdout line is one JSON object (base URLs, CA path, app registrations with their
fake credentials); then it serves until SIGINT/SIGTERM and exits 0. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from types import FrameType

from .app import Emulator
from .seed import demo_seed_path, load_seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--seed", help="seed file (YAML or JSON); default: the demo tenant")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free)")
    parser.add_argument("--state-dir", help="where the CA and app certificates are written")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    emu = Emulator(
        load_seed(args.seed or demo_seed_path()), port=args.port, state_dir=args.state_dir
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    emu.start()
    try:
        sys.stdout.write(json.dumps(emu.info.launch_json()) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
