"""Which domain an address is in, and whether it is outside the organisation."""

from __future__ import annotations

from collections.abc import Iterable


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def tenant_domains(addresses: Iterable[str]) -> frozenset[str]:
    """The organisation's domains as far as the account's own addresses show them."""
    return frozenset(domain_of(a) for a in addresses if "@" in a)


def is_external(address: str, domains: frozenset[str]) -> bool:
    """True if ``address`` is outside ``domains`` (subdomains count as inside)."""
    d = domain_of(address)
    if not d:
        return False
    return not any(d == known or d.endswith("." + known) for known in domains)
