"""Step: resolve restricted addresses to directory users (Graph ``/users``), a bounded pool."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from m365 import GraphClient
from m365.errors import (
    AuthError,
    ConfigurationError,
    InvalidIdentifierError,
    M365Error,
    NotFoundError,
    PermissionDeniedError,
)
from orchestration.logs import run_logger
from orchestration.profiles import ProfileClients
from playbook.ratelimit import TokenBucket
from playbook.sweep.report import describe_failure
from playbook.sweep.verdicts import ResolvedEntry

from ._policy import single_try

# Errors that will be the same for every other address: stop instead of hammering Graph.
_FATAL = (AuthError, PermissionDeniedError, ConfigurationError)
# An address that is no user costs get_user up to three requests (id/UPN, proxyAddresses, mail).
_EXTRA_CALLS_WHEN_NOT_FOUND = 2
_PROGRESS_EVERY_SECONDS = 5.0


def _resolve_one(
    graph: GraphClient, address: str, bucket: TokenBucket, stop: threading.Event
) -> ResolvedEntry:
    if stop.is_set():
        return ResolvedEntry(address=address, resolution="error", error="skipped: Graph refused us")
    bucket.acquire()
    try:
        user = graph.get_user(address)
    except InvalidIdentifierError as exc:  # malformed address: no request was made
        return ResolvedEntry(address=address, resolution="error", error=describe_failure(exc))
    except NotFoundError:
        for _ in range(_EXTRA_CALLS_WHEN_NOT_FOUND):  # pay for the fallback lookups afterwards
            bucket.acquire()
        return ResolvedEntry(address=address, resolution="no-user")
    except _FATAL as exc:
        stop.set()
        return ResolvedEntry(address=address, resolution="error", error=describe_failure(exc))
    except M365Error as exc:  # throttled or unavailable after the client's retries
        return ResolvedEntry(address=address, resolution="error", error=describe_failure(exc))
    return ResolvedEntry(
        address=address, resolution="user", user_id=user.id, user_upn=user.user_principal_name
    )


@single_try("resolve_entries")
def resolve_entries(
    tenant: str,
    addresses: list[str],
    graph_bucket: TokenBucket,
    workers: int,
    profiles: ProfileClients,
) -> list[ResolvedEntry]:
    """The directory user behind each address ("no-user" for senders without one).

    Per-address failures are returned, not raised: the sweep reports them and retries them next
    time. Graph calls draw from ``graph_bucket``, shared by every tenant of the sweep.
    """
    logger = run_logger()
    if not addresses:
        return []
    graph = profiles.clients(tenant).graph  # loaded by list_restricted_entries
    stop = threading.Event()
    results: list[ResolvedEntry] = []
    started = last_log = time.monotonic()
    logger.info("%s: resolving %d address(es) with %d worker(s)", tenant, len(addresses), workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"resolve-{tenant}") as pool:
        futures = [pool.submit(_resolve_one, graph, a, graph_bucket, stop) for a in addresses]
        for future in as_completed(futures):
            results.append(future.result())
            now = time.monotonic()
            if now - last_log >= _PROGRESS_EVERY_SECONDS:
                last_log = now
                logger.info("%s: resolved %d of %d", tenant, len(results), len(addresses))
    errors = [r for r in results if r.resolution == "error"]
    logger.info(
        "%s: resolved %d address(es) in %.1fs: %d user(s), %d without a user, %d failed",
        tenant,
        len(results),
        time.monotonic() - started,
        sum(r.resolution == "user" for r in results),
        sum(r.resolution == "no-user" for r in results),
        len(errors),
    )
    if errors:
        logger.warning("%s: first resolution failure: %s", tenant, errors[0].error)
    return results
