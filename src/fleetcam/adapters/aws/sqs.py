"""SQS: S3 notifications in message bodies → ObjectCreated, and the ingest dead-letter queue."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from fleetcam.ports import ObjectCreated

TEST_EVENT = "s3:TestEvent"
"""What S3 sends once when a notification is configured; it names no object."""


def object_created_events(body: str) -> list[ObjectCreated]:
    """The ObjectCreated records of an S3 event notification (an SQS message body).

    Keys arrive URL-encoded (a space as ``+``); they are decoded here, once. A test event,
    and records of other event types, give nothing.

    Raises:
        ValueError: the body is not an S3 event notification.
    """
    doc = json.loads(body)
    if not isinstance(doc, dict):
        raise ValueError("not an S3 event notification")
    if doc.get("Event") == TEST_EVENT:
        return []
    out = []
    for rec in doc.get("Records", []):
        if not str(rec.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3, obj = rec["s3"], rec["s3"]["object"]
        out.append(ObjectCreated(bucket=s3["bucket"]["name"], key=unquote_plus(obj["key"]),
                                 size=int(obj.get("size", 0)), etag=obj.get("eTag", ""),
                                 sequencer=obj.get("sequencer", "")))
    return out


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    receive_count: int
    sent: float
    """When the message first entered the ingest queue (unix seconds)."""


class DeadLetters:
    """The ingest queue's DLQ: list its messages, or move them back to the queue."""

    def __init__(self, sqs_client: Any, dlq_url: str, queue_url: str) -> None:
        self.sqs = sqs_client
        self.dlq_url = dlq_url
        self.queue_url = queue_url

    def _receive(self, visibility: int) -> list[dict[str, Any]]:
        r = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10,
                                     VisibilityTimeout=visibility, WaitTimeSeconds=0,
                                     AttributeNames=["All"])
        return list(r.get("Messages", []))

    def peek(self) -> list[DeadLetter]:
        """Every message, left in the queue: each is hidden while listing, then shown again."""
        received: list[dict[str, Any]] = []
        try:
            while batch := self._receive(60):
                received += batch
        finally:
            for i in range(0, len(received), 10):
                self.sqs.change_message_visibility_batch(QueueUrl=self.dlq_url, Entries=[
                    {"Id": str(j), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for j, m in enumerate(received[i:i + 10])])
        return [DeadLetter(m["MessageId"], m["Body"],
                           int(m.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
                           int(m.get("Attributes", {}).get("SentTimestamp", 0)) / 1000)
                for m in received]

    def replay(self, limit: int | None = None) -> int:
        """Move messages to the ingest queue (sent first, then deleted: at least once)."""
        moved = 0
        while (limit is None or moved < limit) and (batch := self._receive(60)):
            entries = [{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(batch)]
            sent = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            ok = {e["Id"] for e in sent.get("Successful", [])}
            done = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(batch) if str(i) in ok]
            if done:
                self.sqs.delete_message_batch(QueueUrl=self.dlq_url, Entries=done)
            moved += len(done)
            if len(done) < len(batch):
                break  # the queue refused some: leave them for the next run
        return moved
