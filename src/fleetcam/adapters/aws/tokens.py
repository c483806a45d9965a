"""DynamoDB TokenStore (table Tokens: keyed by the key's hash) and ShareStore (Shares)."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from fleetcam.adapters.aws.models import SharesModel, TokensModel
from fleetcam.domain.access import TokenRecord
from fleetcam.domain.shares import REVOKED_KEPT, ShareLink

COUNTER = "#counter"
GRACE = 86400  # expired tokens linger a day (flespi deletes them; so does the table's TTL)


def _expires_at(rec: TokenRecord) -> datetime | None:
    last = max(rec.expire, int(max(rec.accessed, rec.created) + rec.ttl) if rec.ttl else 0)
    return datetime.fromtimestamp(last + GRACE, timezone.utc) if last else None


def _model(rec: TokenRecord) -> TokensModel:
    return TokensModel(key_hash=rec.key_hash, id=rec.id, data=rec.to_row(),
                       expires_at=_expires_at(rec))


def _record(item: TokensModel) -> TokenRecord | None:
    return TokenRecord.from_row(item.data) if item.data else None


class DynamoTokenStore:
    def add(self, record: TokenRecord) -> TokenRecord:
        counter = TokensModel(key_hash=COUNTER)
        counter.update(actions=[TokensModel.next_id.add(1)])
        record = replace(record, id=int(counter.next_id or 0))
        _model(record).save(condition=TokensModel.key_hash.does_not_exist())
        return record

    def get(self, token_id: int) -> TokenRecord | None:
        for item in TokensModel.by_id.query(token_id, limit=1):
            return self.by_hash(item.key_hash)  # the table read is consistent, the GSI not
        return None

    def by_hash(self, key_hash: str) -> TokenRecord | None:
        if key_hash == COUNTER:
            return None
        try:
            return _record(TokensModel.get(key_hash, consistent_read=True))
        except DoesNotExist:
            return None

    def list(self) -> list[TokenRecord]:
        out = [r for item in TokensModel.scan(TokensModel.id.exists())
               if (r := _record(item)) is not None]
        return sorted(out, key=lambda r: r.id)

    def update(self, record: TokenRecord) -> bool:
        try:
            _model(record).save(condition=TokensModel.id == record.id)
        except PutError as e:
            if e.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def touch(self, token_id: int, accessed: float) -> None:
        rec = self.get(token_id)
        if rec is None:
            return
        rec = replace(rec, accessed=accessed)
        try:
            TokensModel(key_hash=rec.key_hash).update(
                actions=[TokensModel.data.set(rec.to_row()),
                         TokensModel.expires_at.set(_expires_at(rec))],
                condition=TokensModel.id == token_id)
        except UpdateError as e:
            if e.cause_response_code != "ConditionalCheckFailedException":
                raise

    def delete(self, token_id: int) -> bool:
        rec = self.get(token_id)
        if rec is None:
            return False
        try:
            TokensModel(key_hash=rec.key_hash).delete(condition=TokensModel.id == token_id)
        except Exception as e:  # DeleteError
            if getattr(e, "cause_response_code", "") == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _share(m: SharesModel) -> ShareLink:
    return ShareLink(id=m.id, uuid=m.uuid, device_id=int(m.device_id), expire=int(m.expire),
                     created=float(m.created), revoked=bool(m.revoked))


class DynamoShareStore:
    def add(self, link: ShareLink) -> None:
        SharesModel(id=link.id, uuid=link.uuid, device_id=link.device_id, expire=link.expire,
                    created=link.created, revoked=link.revoked,
                    expires_at=datetime.fromtimestamp(link.expire + REVOKED_KEPT, timezone.utc),
                    ).save(condition=SharesModel.id.does_not_exist())

    def get(self, share_id: str) -> ShareLink | None:
        try:
            return _share(SharesModel.get(share_id, consistent_read=True))
        except DoesNotExist:
            return None

    def of_file(self, uuid: str) -> list[ShareLink]:
        return sorted((_share(m) for m in SharesModel.by_uuid.query(uuid)),
                      key=lambda s: (s.created, s.id))

    def revoke(self, share_id: str) -> bool:
        try:
            SharesModel(id=share_id).update(actions=[SharesModel.revoked.set(True)],
                                            condition=SharesModel.id.exists()
                                            & (SharesModel.revoked == False))  # noqa: E712
        except UpdateError as e:
            if e.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True
