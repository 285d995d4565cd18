"""Read a run's hand-over credential, for the analyst who gives it to the user in person.

``python -m playbook.handover <flow-run-id>`` prints the password (or TAP) once. The Prefect UI
masks Secret blocks, so this is the supported way to read one. It refuses to print into a pipe or
a file unless ``--allow-non-tty`` is given, so the value does not land in a shell log by accident.
"""

from __future__ import annotations

import argparse
import sys
from uuid import UUID

from prefect.blocks.system import Secret

from playbook.decisions import handover_block_name


def block_for(run_or_block: str) -> str:
    """Accept a flow run id or the block name itself; anything else is refused."""
    if run_or_block.startswith("unblock-handover-"):
        run_or_block = run_or_block.removeprefix("unblock-handover-")
    try:
        return handover_block_name(str(UUID(run_or_block)))
    except ValueError:
        raise SystemExit(f"not a flow run id or hand-over block name: {run_or_block!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", help="the unblock-user flow run id (or the block name)")
    parser.add_argument("--allow-non-tty", action="store_true")
    args = parser.parse_args(argv)
    if not sys.stdout.isatty() and not args.allow_non_tty:
        print("refusing to print a credential into a pipe or file", file=sys.stderr)
        return 2
    name = block_for(args.run)
    try:
        secret = Secret.load(name)  # type: ignore[no-untyped-call]
    except ValueError:
        print(f"no Secret block {name}: already deleted by the follow-up check?", file=sys.stderr)
        return 1
    assert isinstance(secret, Secret)
    print(secret.get())
    print(
        f"Give this to the user out of band (in person or by phone), never by e-mail. "
        f"It is deleted with the block {name} after the follow-up check.",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
