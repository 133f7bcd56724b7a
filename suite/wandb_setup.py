"""Decide how W&B runs before any logger is created: online with credentials, offline without, never a prompt."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

WANDB_HOST = "api.wandb.ai"


def has_wandb_credentials() -> bool:
    """True when an API key is in the environment or in ~/.netrc (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc_path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if not netrc_path.is_file():
        return False
    try:
        return netrc.netrc(str(netrc_path)).authenticators(WANDB_HOST) is not None
    except (netrc.NetrcParseError, OSError):
        return False


def choose_wandb_mode() -> tuple[str, bool]:
    """Return (mode, decided_here). An explicit WANDB_MODE always wins; otherwise offline without credentials.

    Sets WANDB_MODE in the environment so that DDP worker processes (started after this) agree.
    """
    explicit = os.environ.get("WANDB_MODE")
    if explicit:
        return explicit, False
    mode = "online" if has_wandb_credentials() else "offline"
    os.environ["WANDB_MODE"] = mode
    return mode, True
