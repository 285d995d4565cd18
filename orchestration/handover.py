"""Open a run's sealed hand-over credential, for the analyst who gives it to the user in person.

    python -m orchestration.handover <flow-run-id> --api-url http://prefect:4200/api \
        --key handover.key
    python -m orchestration.handover keygen --out handover.key

The run stores the new password (or TAP) only sealed to the hand-over team's public key
(``playbook.sealing``); this command reads the sealed value from the Prefect API, opens it with
the team's private key (``--key`` or ``UNBLOCK_HANDOVER_KEY``; never stored in Prefect), records
the reveal as a Prefect event (who, when; never the value) and prints the credential once.

It never starts a local Prefect server: without ``--api-url`` (or ``PREFECT_API_URL``) it refuses
to run, and an unreachable API is reported within seconds. It sends nothing but its API calls
(Prefect's SDK telemetry is off for it: ``DO_NOT_TRACK=1``). It refuses to print into a pipe or a
file unless ``--allow-non-tty`` is given, so the value does not land in a shell log by accident.
Prefect is imported only after these checks.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shlex
import socket
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from playbook.decisions import handover_block_name
from playbook.params import HandoverMode
from playbook.sealing import (
    SealError,
    fingerprint,
    generate_key_file,
    load_private_key,
    open_sealed,
)

KEY_ENV = "UNBLOCK_HANDOVER_KEY"
API_TIMEOUT_SECONDS = 5
_MAX_ANALYST = 100


class HandoverFailed(Exception):
    """Stop with this message (to stderr) and exit status 1."""


def command_line(run_id: str, *, api_url: str, key_path: str, python: str = "python") -> str:
    """The exact command an analyst runs for ``run_id`` (printed by the demo)."""
    return shlex.join(
        [python, "-m", "orchestration.handover", run_id, "--api-url", api_url, "--key", key_path]
    )


def run_id_of(run_or_block: str) -> str:
    """Accept a flow run id or the block name itself; anything else is refused."""
    if run_or_block.startswith("unblock-handover-"):
        run_or_block = run_or_block.removeprefix("unblock-handover-")
    try:
        return str(UUID(run_or_block))
    except ValueError:
        raise SystemExit(f"not a flow run id or hand-over block name: {run_or_block!r}") from None


def _analyst(value: str) -> str:
    if not value.strip() or len(value) > _MAX_ANALYST or not value.isprintable():
        raise argparse.ArgumentTypeError("a name of at most 100 printable characters")
    return value.strip()


def _reveal_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.handover",
        description="Open and print a run's sealed hand-over credential (password or TAP).",
        epilog="Create the team's key pair once: "
        "python -m orchestration.handover keygen --out FILE",
    )
    parser.add_argument("run", help="the unblock-user flow run id (or its hand-over block name)")
    parser.add_argument(
        "--api-url",
        default=os.environ.get("PREFECT_API_URL"),
        help="the Prefect API, e.g. http://127.0.0.1:4200/api (default: $PREFECT_API_URL)",
    )
    parser.add_argument(
        "--key",
        type=Path,
        default=os.environ.get(KEY_ENV),
        help=f"the hand-over team's private key file (default: ${KEY_ENV})",
    )
    parser.add_argument(
        "--analyst",
        type=_analyst,
        default=None,
        help="your name, recorded with the reveal (the OS user and host are recorded too)",
    )
    parser.add_argument("--allow-non-tty", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["keygen"]:
        return keygen(args[1:])
    return reveal(args)


def keygen(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.handover keygen",
        description="Create the hand-over team's X25519 key pair: the private key goes to --out "
        "(mode 0600, never overwritten); the public key is printed for the tenant profile.",
    )
    parser.add_argument("--out", type=Path, required=True, help="the private key file to create")
    args = parser.parse_args(argv)
    try:
        args.out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        public = generate_key_file(args.out)
    except (SealError, OSError) as exc:
        print(f"keygen: {exc}", file=sys.stderr)
        return 2
    print(public)
    print(
        f"Private key written to {args.out} (keep it with the hand-over team, never in Prefect). "
        "Put the line above in the tenant profile's handover_public_key.",
        file=sys.stderr,
    )
    return 0


def reveal(argv: list[str]) -> int:
    args = _reveal_parser().parse_args(argv)
    run_id = run_id_of(args.run)
    if not sys.stdout.isatty() and not args.allow_non_tty:
        print("refusing to print a credential into a pipe or file", file=sys.stderr)
        return 2
    if not args.api_url:
        print(
            "no Prefect API URL: pass --api-url http://<server>:4200/api (or set PREFECT_API_URL)."
            " This command never starts a local Prefect server.",
            file=sys.stderr,
        )
        return 2
    if args.key is None:
        print(f"no hand-over key: pass --key FILE (or set {KEY_ENV})", file=sys.stderr)
        return 2
    try:
        private = load_private_key(args.key)
    except SealError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    refused = _unreachable(str(args.api_url))
    if refused is not None:
        print(refused, file=sys.stderr)
        return 1
    try:
        with _api(str(args.api_url)) as client:
            return _reveal(client, str(args.api_url), run_id, private, args.analyst)
    except HandoverFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1


def _unreachable(api_url: str) -> str | None:
    """A TCP connection to the API's host, before Prefect is even imported (seconds on a busy
    host): the message when nothing answers there, else None. Skipped behind a proxy, where only
    the proxy is reached directly."""
    parts = urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"not an http(s) URL: --api-url {api_url}"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=API_TIMEOUT_SECONDS):
            return None
    except OSError as exc:
        return (
            f"cannot reach the Prefect API at {api_url} ({type(exc).__name__}); check --api-url "
            "and that the server is running"
        )


@contextmanager
def _api(api_url: str) -> Iterator[Any]:
    """A Prefect client for ``api_url`` only: no ephemeral server, no retries, a short timeout.

    Without an API URL the Prefect client starts a temporary local server on ``~/.prefect``
    (the "database is locked" seen when the URL was missing); this never lets it.
    """
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.settings import (
        PREFECT_API_REQUEST_TIMEOUT,
        PREFECT_API_URL,
        PREFECT_CLIENT_MAX_RETRIES,
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE,
        temporary_settings,
    )

    unreachable = (
        f"cannot reach the Prefect API at {api_url}; check --api-url and that the server is running"
    )
    with ExitStack() as stack:
        stack.enter_context(
            temporary_settings(
                updates={
                    PREFECT_API_URL: api_url,
                    PREFECT_SERVER_ALLOW_EPHEMERAL_MODE: False,
                    PREFECT_CLIENT_MAX_RETRIES: 0,
                    PREFECT_API_REQUEST_TIMEOUT: API_TIMEOUT_SECONDS,
                }
            )
        )
        try:
            client = stack.enter_context(get_client(sync_client=True))
            problem = client.api_healthcheck()
        except (httpx.HTTPError, OSError) as exc:
            raise HandoverFailed(f"{unreachable} ({type(exc).__name__})") from None
        if problem is not None:
            raise HandoverFailed(f"{unreachable} ({type(problem).__name__})")
        yield client


def _reveal(client: Any, api_url: str, run_id: str, private: Any, analyst: str | None) -> int:
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    from orchestration import handover_audit

    block = handover_block_name(run_id)
    try:
        run = client.read_flow_run(UUID(run_id))
    except ObjectNotFound:
        raise HandoverFailed(f"no flow run {run_id} on the Prefect API at {api_url}") from None
    except PrefectHTTPStatusError as exc:
        raise HandoverFailed(_http_problem(exc, api_url)) from None
    request = (run.parameters or {}).get("request") or {}
    account = request.get("account", "the account") if isinstance(request, dict) else "the account"
    if isinstance(request, dict) and request.get("handover") == HandoverMode.NONE:
        raise HandoverFailed(
            f"run {run_id} handed over nothing (handover 'none'): the user resets the password "
            "through self-service"
        )
    try:
        doc = client.read_block_document_by_name(
            block, block_type_slug="secret", include_secrets=True
        )
    except ObjectNotFound:
        deletion = handover_audit.last_deletion(client, run_id)
        if deletion is not None:
            raise HandoverFailed(
                f"no credential for run {run_id}: it was deleted at "
                f"{deletion.at.isoformat(timespec='seconds')} by {deletion.by}"
                + (f" ({deletion.reason})" if deletion.reason else "")
            ) from None
        raise HandoverFailed(
            f"no credential for run {run_id}: none is stored (the run has not sealed one yet, or "
            "it was deleted longer ago than the server keeps events)"
        ) from None
    except PrefectHTTPStatusError as exc:
        raise HandoverFailed(_http_problem(exc, api_url)) from None
    sealed = (doc.data or {}).get("value")
    if not isinstance(sealed, str):
        raise HandoverFailed(f"the Secret block {block} holds no sealed hand-over value")
    try:
        opened = open_sealed(sealed, private, context=run_id)
    except SealError as exc:
        raise HandoverFailed(f"cannot open the credential of run {run_id}: {exc}") from None
    payload = {
        "analyst": analyst,
        "os_user": getpass.getuser(),
        "host": socket.gethostname(),
        "kind": opened.kind.value,
        "key": fingerprint(private.public_key()),
    }
    try:
        handover_audit.record_revealed(block, payload)
    except (OSError, TimeoutError, ValueError, RuntimeError) as exc:
        raise HandoverFailed(
            f"could not record the reveal in the Prefect API ({type(exc).__name__}); "
            "nothing was printed"
        ) from None
    what = "password" if opened.kind.value == "password" else "one-time Temporary Access Pass"
    print(opened.value.get_secret_value(), flush=True)
    print(
        f"The {what} of {account} (run {run.name}). Give it to the user in person or by phone, "
        "never by e-mail"
        + ("; they must change it at the next sign-in" if what == "password" else "")
        + ". This reveal was recorded (event unblock-email.handover.revealed).",
        file=sys.stderr,
    )
    return 0


def _http_problem(exc: Exception, api_url: str) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 401:
        return (
            f"the Prefect API at {api_url} refused the request (HTTP 401): set "
            "PREFECT_API_AUTH_STRING to the server's user:password"
        )
    return f"the Prefect API at {api_url} answered HTTP {status}"


if __name__ == "__main__":
    # A credential tool talks to the Prefect API and nothing else: no SDK telemetry (Prefect
    # reads DO_NOT_TRACK when it is imported, which happens after the argument checks).
    os.environ.setdefault("DO_NOT_TRACK", "1")
    sys.exit(main())
