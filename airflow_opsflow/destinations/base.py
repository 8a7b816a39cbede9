"""The declaration side of a sync destination (what a DAG file builds)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from airflow_opsflow.sync.destinations.base import DestinationClient
    from airflow_opsflow.sync.ratelimit import RateLimiter


@dataclass(frozen=True)
class Opened:
    """An engine destination ready to send, with its shared request budget and batch size."""

    destination: DestinationClient
    limiter: RateLimiter
    batch_size: int


class SyncDestination(ABC):
    """A destination as declared in a DAG (``HttpEndpoint``, ``HubSpotObjects``, ``DatabaseTable``): settings only;
    :meth:`open` resolves connections when the task runs and returns its engine side, the
    :class:`~airflow_opsflow.sync.destinations.base.DestinationClient` of the same stem
    (``destinations/http.py`` opens ``sync/destinations/http.py``)."""

    default_batch_size: int = 100
    # Fields rendered with Jinja (params, Variables...) when the task holding the declaration runs. A
    # declaration is frozen: ReverseSyncOperator renders a copy (``dataclasses.replace``, so ``__post_init__``
    # validates the rendered values) rather than setting them on the DAG's object as Airflow would.
    template_fields: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def open(self, owner: str, sync_id: str, concurrency: int) -> Opened:
        """Look up connections and build the engine destination (``owner`` names the task in errors)."""

    def describe(self) -> str:
        return type(self).__name__
