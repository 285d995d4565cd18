"""A stateful fake Microsoft 365 tenant served over real HTTPS on 127.0.0.1.

See docs/architecture.md ("emulator" and "Emulator wire decisions").
"""

from __future__ import annotations

from .app import AppInfo, Emulator, EmulatorInfo, TenantInfo
from .faults import FaultRule
from .recording import RecordedRequest
from .seed import ROLE_TEMPLATES, Seed, demo_seed_path, load_seed

__all__ = [
    "ROLE_TEMPLATES",
    "AppInfo",
    "Emulator",
    "EmulatorInfo",
    "FaultRule",
    "RecordedRequest",
    "Seed",
    "TenantInfo",
    "demo_seed_path",
    "load_seed",
]
