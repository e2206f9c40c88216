"""The Dramatiq Redis broker as rollcall uses it: its queues, and a message on them.

Dramatiq acknowledges a message only after its actor returned, so a worker that
dies mid-task (even ``kill -9``) leaves the task unacknowledged; the broker hands
it to another worker once the dead one has not sent a heartbeat for ``[cluster]
worker_heartbeat_s``. The heartbeat check runs during the broker's queue
maintenance, which Dramatiq does by chance on a share of its calls: that share
is raised here so that a dead worker's task moves within seconds of the timeout.
"""

from __future__ import annotations

from typing import Any

from rollcall.config import Config

TASK_QUEUE = "rollcall-analysis"
RESULT_QUEUE = "rollcall-results"
ANALYSE_ACTOR = "rollcall_analyse"
RESULT_ACTOR = "rollcall_result"
NAMESPACE = "rollcall"
#: Share (per million broker calls) that also run queue maintenance.
MAINTENANCE_CHANCE = 100_000


def make_broker(config: Config) -> Any:
    """A Dramatiq ``RedisBroker`` for ``[cluster] broker_url`` (imported only when used)."""
    import redis
    from dramatiq.brokers.redis import RedisBroker

    client = redis.Redis.from_url(
        config.cluster.broker_url.get_secret_value(), socket_timeout=30, health_check_interval=15
    )
    return RedisBroker(
        client=client,
        namespace=NAMESPACE,
        heartbeat_timeout=int(config.cluster.worker_heartbeat_s * 1000),
        maintenance_chance=MAINTENANCE_CHANCE,
    )


def send(broker: Any, queue: str, actor: str, text: str) -> None:
    """Put one sealed message on ``queue`` for ``actor``."""
    from dramatiq import Message

    broker.enqueue(Message(queue_name=queue, actor_name=actor, args=(text,), kwargs={}, options={}))


def broker_address(config: Config) -> str:
    """The broker's URL without its password, for logs and /healthz."""
    from urllib.parse import urlsplit

    url = config.cluster.broker_url.get_secret_value()
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
