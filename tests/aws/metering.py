"""Count the DynamoDB requests PynamoDB makes (tests and bench/aws_fleet.py read them)."""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def dynamodb_calls() -> Iterator[Counter[str]]:
    """Within the block, every DynamoDB request of any thread is counted by operation name
    (``Query``, ``GetItem``, ``TransactWriteItems``...); the counter is live."""
    from pynamodb.connection.base import Connection

    calls: Counter[str] = Counter()
    lock = threading.Lock()
    original = Connection._make_api_call

    def counted(self: Any, operation_name: str, *args: Any, **kwargs: Any) -> Any:
        with lock:
            calls[operation_name] += 1
        return original(self, operation_name, *args, **kwargs)

    Connection._make_api_call = counted  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        Connection._make_api_call = original  # type: ignore[method-assign]
