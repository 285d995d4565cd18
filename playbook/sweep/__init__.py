"""The restricted-users sweep, stage by stage; pure (no Prefect, no network).

- ``params``: the run's request (``SweepRequest``), tenant selection, effective policy;
- ``state``: entries as remembered, the per-tenant diff, the table artifact that stores them;
- ``verdicts``: listing, dedupe, first seen / new / restricted / cleared, user resolution;
- ``containment``: the unblock-user runs to start (idempotency keys, caps) and their results;
- ``report``: failures in one line, the summary markdown artifact.

Import from the stage modules; this package re-exports nothing.
"""
