"""One OPC UA subscription, driven through asyncua's service layer (``Client.uaclient``).

The collector does not use asyncua's high-level ``Subscription`` in its hot path: that
one wraps every notification in two objects and passes it through a queue (or a task per
notification in handler mode). Here the notifications of a publish response go to
``on_data`` in one call, in the order the server sent them. The session's publish loop
(asyncua) still sends the publish requests and the acknowledgements.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from asyncua import ua
from asyncua.client.ua_client import UaClient

log = logging.getLogger(__name__)

DataHandler = Callable[[Sequence[ua.MonitoredItemNotification]], None]
StatusHandler = Callable[[ua.StatusCode], None]


class ItemSubscription:
    """A subscription with a fixed set of monitored items; can be rebuilt on the same session."""

    def __init__(
        self,
        uaclient: UaClient,
        params: ua.CreateSubscriptionParameters,
        items: Sequence[ua.MonitoredItemCreateRequest],
        on_data: DataHandler,
        on_status: StatusHandler,
        items_per_call: int = 1000,
    ) -> None:
        self.uaclient = uaclient
        self.params = params
        self.items = list(items)
        self.on_data = on_data
        self.on_status = on_status
        self.items_per_call = items_per_call
        self.subscription_id: int | None = None
        self.revised: ua.CreateSubscriptionResult | None = None
        self.last_publish = time.monotonic()  # data or keep-alive
        self.last_publish_wall = time.time()  # the same, wall clock

    @property
    def keepalive_s(self) -> float:
        """How often the server promises to answer, data or not (its revised values)."""
        r = self.revised
        if r is None:
            return float(self.params.RequestedPublishingInterval * self.params.RequestedMaxKeepAliveCount) / 1000
        return float(r.RevisedPublishingInterval * r.RevisedMaxKeepAliveCount) / 1000

    @property
    def publishing_interval_s(self) -> float:
        r = self.revised
        interval = r.RevisedPublishingInterval if r is not None else self.params.RequestedPublishingInterval
        return float(interval) / 1000

    def heard_until(self) -> float:
        """Wall time up to which every value the server had queued has arrived, give or
        take a publishing interval for the server's sampling (a value may enter its queue
        a little after its SourceTimestamp): the last publish response minus one interval."""
        return self.last_publish_wall - self.publishing_interval_s

    def silent_for(self) -> float:
        return time.monotonic() - self.last_publish

    async def create(self) -> list[tuple[ua.MonitoredItemCreateRequest, ua.StatusCode]]:
        """Create the subscription and its items. Returns the items the server refused."""
        self.revised = await self.uaclient.create_subscription(self.params, self._on_publish)
        self.subscription_id = self.revised.SubscriptionId
        self.last_publish, self.last_publish_wall = time.monotonic(), time.time()
        refused = []
        for start in range(0, len(self.items), self.items_per_call):
            chunk = self.items[start:start + self.items_per_call]
            params = ua.CreateMonitoredItemsParameters(
                SubscriptionId=self.subscription_id,
                TimestampsToReturn=ua.TimestampsToReturn.Both,
                ItemsToCreate=chunk,
            )
            results = await self.uaclient.create_monitored_items(params)
            refused += [(item, r.StatusCode) for item, r in zip(chunk, results, strict=True)
                        if not r.StatusCode.is_good()]
        return refused

    async def delete(self) -> None:
        """Delete it on the server (best effort: the server may have dropped it already)."""
        old, self.subscription_id = self.subscription_id, None
        if old is None:
            return
        try:
            await self.uaclient.delete_subscriptions([old])
        except Exception:  # a hung or forgetful server: the new one replaces it anyway
            log.debug("deleting subscription %s failed", old, exc_info=True)

    async def rebuild(self) -> list[tuple[ua.MonitoredItemCreateRequest, ua.StatusCode]]:
        await self.delete()
        return await self.create()

    def _on_publish(self, result: ua.PublishResult) -> None:
        if result.SubscriptionId != self.subscription_id:
            return  # from a subscription deleted (or being replaced) since
        self.last_publish, self.last_publish_wall = time.monotonic(), time.time()
        for notification in result.NotificationMessage.NotificationData or ():
            if isinstance(notification, ua.DataChangeNotification):
                self.on_data(notification.MonitoredItems)
            elif isinstance(notification, ua.StatusChangeNotification):
                self.on_status(notification.Status)
