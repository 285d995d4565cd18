"""The names of the steps the playbook's flows record in their journal.

A step's name is the name of the Prefect task it runs where there is one (``reset_password``),
and the name the run report, the follow-up recovery (``tasks.recover_interrupted_runs`` looks
for a completed ``reset_password`` task run) and the tests read. One place, so a rename cannot
leave a caller comparing against a name nothing records any more.
"""

from __future__ import annotations

from enum import StrEnum


class Step(StrEnum):
    # unblock-user, in the order a run that unblocks performs them
    RESOLVE_ACCOUNT = "resolve_account"
    REVIEW_ADMIN_ROLES = "review_admin_roles"
    REQUEST_PRIVILEGED_APPROVAL = "request_privileged_approval"
    PREPARE_HANDOVER = "prepare_handover"
    RESET_PASSWORD = "reset_password"  # noqa: S105 (a step name)
    REVOKE_SESSIONS = "revoke_sessions"
    BLOCK_SIGN_IN = "block_sign_in"
    HAND_OVER_CREDENTIAL = "hand_over_credential"
    RECOVER_INTERRUPTED_RUNS = "recover_interrupted_runs"
    FIND_RESTRICTED_ENTRY = "find_restricted_entry"
    CONFIRM_PASSWORD_CHANGE = "confirm_password_change"  # noqa: S105 (a step name)
    REVIEW_INBOX_RULES = "review_inbox_rules"
    REVIEW_MAILBOX_FORWARDING = "review_mailbox_forwarding"
    READ_UNBLOCK_COUNT = "read_unblock_count"
    REVIEW_SIGN_IN_METHODS = "review_sign_in_methods"
    REVIEW_SIGN_INS = "review_sign_ins"
    REVIEW_OAUTH_GRANTS = "review_oauth_grants"
    REVIEW_MAILBOX_DELEGATES = "review_mailbox_delegates"
    REVIEW_SENT_MAIL = "review_sent_mail"
    REQUEST_APPROVAL = "request_approval"
    REMOVE_SIGN_IN_METHODS = "remove_sign_in_methods"
    REVOKE_OAUTH_GRANTS = "revoke_oauth_grants"
    REMOVE_MAILBOX_DELEGATES = "remove_mailbox_delegates"
    REVOKE_SESSIONS_AFTER_EVICTION = "revoke_sessions_after_eviction"
    DISABLE_SUSPICIOUS_RULES = "disable_suspicious_rules"
    CLEAR_FORWARDING = "clear_forwarding"
    ENABLE_SIGN_IN = "enable_sign_in"
    UNBLOCK_SENDER = "unblock_sender"
    RECORD_UNBLOCK = "record_unblock"
    CONFIRM_UNBLOCK = "confirm_unblock"
    SCHEDULE_VERIFICATION = "schedule_verification"
    # verify-unblock, and unblock-user after a failure
    DELETE_HANDOVER = "delete_handover"
    # around the approvals
    NOTIFY_APPROVAL_NEEDED = "notify_approval_needed"
    ESCALATE = "escalate"
    NOTIFY_OUTCOME = "notify_outcome"
