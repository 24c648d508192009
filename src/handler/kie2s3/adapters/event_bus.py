"""EventBridge: events put on the configured bus, in requests within PutEvents' limits."""

from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from kie2s3.errors import RetryableError
from kie2s3.models import EVENT_SOURCE, BusEvent
from kie2s3.ports import MAX_ENTRIES_PER_PUT, MAX_PUT_BYTES, TOO_LARGE, entry_size

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef, PutEventsResultEntryTypeDef


class EventBus:
    """One EventBridge bus (the default one, or a custom bus in this account and region)."""

    def __init__(self, client: "EventBridgeClient", bus_name: str) -> None:
        self._client = client
        self.bus_name = bus_name

    def put(self, events: Sequence[BusEvent]) -> list[str | None]:
        """Put one request's events (a batch of `batches`): per event, None when EventBridge took it,
        else its error code (`TOO_LARGE` for one that no request can carry: it is not sent).

        Raises RetryableError when the request itself failed (throttled, a network fault): then any
        of its events may or may not have been taken, so a retry may duplicate some (each carries
        its dedupeId). Delivery to the bus's rules is EventBridge's, at least once.
        """
        if len(events) > MAX_ENTRIES_PER_PUT:
            raise ValueError(f"at most {MAX_ENTRIES_PER_PUT} events are put at once")
        results: list[str | None] = [TOO_LARGE if entry_size(e) > MAX_PUT_BYTES else None for e in events]
        sent = [n for n, result in enumerate(results) if result is None]
        entries: list[PutEventsRequestEntryTypeDef] = [
            {
                "Source": EVENT_SOURCE,
                "DetailType": events[n].detail_type,
                "Detail": events[n].detail,
                "EventBusName": self.bus_name,
            }
            for n in sent
        ]
        if not entries:
            return results
        # The answer's entries are in the request's order, one each: an EventId, or an ErrorCode.
        for n, entry in zip(sent, self._put_events(entries), strict=True):
            if "EventId" not in entry:
                results[n] = entry.get("ErrorCode") or "Unknown"
        return results

    def _put_events(
        self, entries: "list[PutEventsRequestEntryTypeDef]"
    ) -> "list[PutEventsResultEntryTypeDef]":
        """One PutEvents request's answer entries; RetryableError when the request itself failed."""
        try:
            return self._client.put_events(Entries=entries).get("Entries", [])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise RetryableError(f"EventBridge PutEvents failed: {code}") from exc
        except BotoCoreError as exc:
            raise RetryableError(f"EventBridge PutEvents failed: {type(exc).__name__}") from exc
