"""A prototype, for the benchmark only: containment as a Prefect *background task* served by a
long-lived task worker (``python -m bench.taskworker``), started with ``contain.delay(...)``.

The worker process is already up, its clients are built and its tokens cached, and the server
pushes the task run to it over a websocket: no polling, no new process per incident. It shows
what a warm Prefect path costs next to ``serve`` (a new process per flow run).
"""

from __future__ import annotations

from prefect import task
from prefect.task_worker import serve

from playbook.clients import clients_for
from playbook.passwords import generate_password
from playbook.redaction import register_secret


@task(name="bench-contain-account")
def contain(tenant: str, account: str, nonce: str) -> str:
    """Resolve, reset (random password, discarded), revoke. ``nonce`` defeats the task cache
    the task worker turns on. Returns the user id only."""
    graph = clients_for(tenant).graph
    user = graph.get_user(account)
    password = generate_password()
    register_secret(password)
    graph.reset_password(user.id, password, force_change=True)
    graph.revoke_sessions(user.id)
    return user.id


def main() -> None:
    # Under ``python -m`` this file is ``__main__``; serve the task object of the importable
    # module, the one ``.delay()`` callers use.
    from bench.taskworker import contain as importable

    serve(importable, limit=4)


if __name__ == "__main__":
    main()
