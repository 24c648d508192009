"""moto's server (`python -m devstack.moto_server -H host -p port`), with one change for the ledger's stream.

moto rolls a failed TransactWriteItems back by restoring a deep copy of each table it names, taken
before the transaction, and a table's copy holds its whole DynamoDB stream. The ledger's stream
grows with every write and is never trimmed locally (DynamoDB keeps 24 hours), so every transaction
grew slower with it: with 3,000 records, ~490 ms instead of ~26 ms. A stream record never changes
once written, so the copy shares the records and copies only the list of them: the rollback is
the same, in the time of a list copy.
"""

import copy
import sys
from typing import Any

from moto.dynamodb.models.table import StreamShard
from moto.server import main


def _copy_sharing_records(self: StreamShard, memo: dict[int, Any]) -> StreamShard:
    clone = copy.copy(self)
    memo[id(self)] = clone
    clone.table = copy.deepcopy(self.table, memo)  # the table being copied: its copy, from the memo
    clone.items = list(self.items)
    return clone


StreamShard.__deepcopy__ = _copy_sharing_records  # type: ignore[attr-defined]

if __name__ == "__main__":
    main(sys.argv[1:])
