"""The per-account unblock counter, kept in Prefect Variables (see playbook.evidence)."""

from __future__ import annotations

from prefect.variables import Variable

from orchestration.logs import run_logger
from playbook.evidence import counter_value, counter_variable_name, read_count
from playbook.report import utcnow

from ._policy import single_try

COUNTER_TAGS = ["unblock-email", "unblock-count"]


@single_try("read_unblock_count")
def read_unblock_count(tenant: str, address: str) -> int:
    """How many times this playbook has unblocked ``address`` in ``tenant`` (0 if never)."""
    count = read_count(Variable.get(counter_variable_name(tenant, address), default=None))
    run_logger().info("Earlier unblocks of %s recorded by this playbook: %d", address, count)
    return count


@single_try("record_unblock")
def record_unblock(tenant: str, address: str) -> int:
    """Add one to the counter after a successful removal; returns the new count.

    Read-modify-write: two runs for the *same* account finishing in the same second could
    count once; the deployment's concurrency limit and the approval gate make that unlikely.
    """
    name = counter_variable_name(tenant, address)
    value = counter_value(read_count(Variable.get(name, default=None)), utcnow())
    Variable.set(name, value, overwrite=True, tags=COUNTER_TAGS)
    run_logger().info("Unblocks of %s recorded by this playbook: %s", address, value["count"])
    return int(value["count"])
