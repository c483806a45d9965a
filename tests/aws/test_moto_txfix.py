"""The test server's transaction fix (tests/aws/moto_txfix.py) keeps DynamoDB's all-or-nothing:
a cancelled transaction leaves every item and the table's stream as they were."""
from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.aws.motoserver import MotoServer, client_kwargs


def _table(ddb: object, *, range_key: bool) -> str:
    name = f"txfix-{uuid.uuid4().hex[:8]}"
    keys = [{"AttributeName": "h", "KeyType": "HASH"}]
    attrs = [{"AttributeName": "h", "AttributeType": "S"}]
    if range_key:
        keys.append({"AttributeName": "r", "KeyType": "RANGE"})
        attrs.append({"AttributeName": "r", "AttributeType": "N"})
    ddb.create_table(TableName=name, KeySchema=keys, AttributeDefinitions=attrs,  # type: ignore[attr-defined]
                     BillingMode="PAY_PER_REQUEST",
                     StreamSpecification={"StreamEnabled": True,
                                          "StreamViewType": "NEW_AND_OLD_IMAGES"})
    return name


def _stream_records(url: str, ddb: object, table: str) -> int:
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]  # type: ignore[attr-defined]
    streams = boto3.client("dynamodbstreams", **client_kwargs(url))
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return len(streams.get_records(ShardIterator=it)["Records"])


@pytest.mark.parametrize("range_key", [False, True])
def test_a_cancelled_transaction_leaves_items_and_stream_as_they_were(
        moto: MotoServer, range_key: bool) -> None:
    assert moto.txfix
    ddb = boto3.client("dynamodb", **client_kwargs(moto.url))
    t = _table(ddb, range_key=range_key)

    def key(h: str) -> dict[str, dict[str, str]]:
        return {"h": {"S": h}, **({"r": {"N": "1"}} if range_key else {})}

    ddb.put_item(TableName=t, Item={**key("a"), "n": {"N": "1"}})
    ddb.put_item(TableName=t, Item={**key("gone"), "n": {"N": "7"}})
    before = _stream_records(moto.url, ddb, t)
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": t, "Item": {**key("b"), "n": {"N": "2"}}}},
            {"Update": {"TableName": t, "Key": key("a"), "UpdateExpression": "SET n = :v",
                        "ExpressionAttributeValues": {":v": {"N": "5"}}}},
            {"Delete": {"TableName": t, "Key": key("gone")}},
            {"ConditionCheck": {"TableName": t, "Key": key("c"),
                                "ConditionExpression": "attribute_exists(h)"}},
        ])
    assert e.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert ddb.get_item(TableName=t, Key=key("a"))["Item"]["n"] == {"N": "1"}
    assert "Item" not in ddb.get_item(TableName=t, Key=key("b"))
    assert ddb.get_item(TableName=t, Key=key("gone"))["Item"]["n"] == {"N": "7"}
    assert _stream_records(moto.url, ddb, t) == before

    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": t, "Item": {**key("b"), "n": {"N": "2"}}}},
        {"Update": {"TableName": t, "Key": key("a"), "UpdateExpression": "SET n = :v",
                    "ExpressionAttributeValues": {":v": {"N": "5"}}}},
    ])
    assert ddb.get_item(TableName=t, Key=key("a"))["Item"]["n"] == {"N": "5"}
    assert ddb.get_item(TableName=t, Key=key("b"))["Item"]["n"] == {"N": "2"}
    assert _stream_records(moto.url, ddb, t) == before + 2
