"""moto's server with one fix: a transaction backs up the items it writes, not whole tables.

moto 5.2 makes ``TransactWriteItems`` all-or-nothing by deep-copying every table the
transaction touches, once per item of the transaction, before applying it. The cost of one
transaction so grows with the size of the tables: at 10 000 devices (30 000 items) each
takes about 1.5 s of moto's CPU, 95% of it in ``copy.deepcopy`` (measured with py-spy on
``bench/aws_fleet.py``'s sweep), where DynamoDB answers in milliseconds whatever the table's
size. This module keeps moto's semantics (the items of a cancelled transaction, and the
stream records it wrote, are put back as they were) at the cost of the items written.

Run as ``python tests/aws/moto_txfix.py -H 127.0.0.1 -p PORT`` (``MotoServer(txfix=True)``);
``bench/aws_fleet.py`` uses it unless ``--moto-as-is``.
"""
from __future__ import annotations

import copy
import sys
import types
from typing import Any


def install() -> None:
    from moto.dynamodb import models as backend_module
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    real_deepcopy = copy.deepcopy

    def deepcopy(x: Any, memo: Any = None) -> Any:
        # transact_write_items' whole-table backup: the items are backed up below instead
        return x if isinstance(x, Table) else real_deepcopy(x, memo)

    backend_module.copy = types.SimpleNamespace(deepcopy=deepcopy)  # type: ignore[attr-defined]
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[Table, Any, Any, Any]] = []
        streams: dict[int, tuple[Any, int]] = {}
        for entry in transact_items:
            try:
                op_type, op = next(iter(entry.items()))
                table = self.tables.get(op.get("TableName"))
                if table is None:
                    continue
                attrs = op["Item"] if op_type == "Put" else op["Key"]
                h = DynamoType(attrs[table.hash_key_attr])
                r = (DynamoType(attrs[table.range_key_attr])
                     if table.range_key_attr is not None else None)
            except (KeyError, StopIteration, AttributeError, TypeError):
                continue  # malformed: moto's own validation answers it
            old = table.items[h].get(r) if r is not None and h in table.items else (
                None if r is not None else table.items.get(h))
            saved.append((table, h, r, real_deepcopy(old)))
            if table.stream_shard is not None:
                streams[id(table)] = (table.stream_shard, len(table.stream_shard.items))
        try:
            original(self, transact_items)
        except Exception:
            for table, h, r, old in reversed(saved):
                if r is None:
                    if old is None:
                        table.items.pop(h, None)
                    else:
                        table.items[h] = old
                elif old is None:
                    table.items[h].pop(r, None)
                else:
                    table.items[h][r] = old
            for shard, length in streams.values():
                del shard.items[length:]
            raise

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    install()
    from moto.server import main as moto_main
    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
