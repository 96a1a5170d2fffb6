"""A rate-limited actor for the glass ceiling tests that run worker processes."""

from __future__ import annotations

import dramatiq

from wallie.broker import setup_broker
from wallie.middleware.glass_ceiling import ActorLimits

broker = setup_broker()


@dramatiq.actor(max_retries=3, limits=ActorLimits("whatsapp", per="deployment"))
def broadcast(number: int) -> None:
    pass
