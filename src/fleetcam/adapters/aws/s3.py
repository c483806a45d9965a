"""ObjectStore over S3 with boto3: multipart uploads, ranged streaming reads, presigned links."""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from fleetcam.errors import NotFound
from fleetcam.ports import ObjectInfo

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MULTIPART = TransferConfig(multipart_threshold=16 * 1024 * 1024,
                           multipart_chunksize=16 * 1024 * 1024, max_concurrency=4)
CHUNK = 256 * 1024


class _Counting:
    """A read-only file wrapper that counts what boto3 reads (the object's size)."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.size += len(data)
        return data


def _missing(e: ClientError) -> bool:
    return e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


class S3ObjectStore:
    """S3 announces each completed ``media/`` object through its bucket notification (SQS)."""

    def __init__(self, bucket: str, s3_client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.s3: Any = s3_client or boto3.client("s3")

    def put(self, key: str, data: BinaryIO | bytes, *, content_type: str,
            metadata: dict[str, str] | None = None) -> ObjectInfo:
        extra = {"ContentType": content_type, "Metadata": dict(metadata or {})}
        if isinstance(data, (bytes, bytearray)):
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=bytes(data), **extra)
            size = len(data)
        else:
            counting = _Counting(data)
            # upload_fileobj switches to a multipart upload past the threshold and aborts it on
            # failure, so a crash mid-upload leaves no visible object
            self.s3.upload_fileobj(counting, self.bucket, key, ExtraArgs=extra, Config=MULTIPART)
            size = counting.size
        return ObjectInfo(key, size, content_type, dict(metadata or {}))

    def head(self, key: str) -> ObjectInfo:
        try:
            r = self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _missing(e):
                raise NotFound(f"object {key} not found") from e
            raise
        return ObjectInfo(key, int(r["ContentLength"]), r.get("ContentType", ""),
                          dict(r.get("Metadata", {})))

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            body = self.s3.get_object(**args)["Body"]
        except ClientError as e:
            if _missing(e) or e.response.get("Error", {}).get("Code") == "InvalidRange":
                raise NotFound(f"object {key} not found") from e
            raise
        return self._chunks(body)

    @staticmethod
    def _chunks(body: Any) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    def presigned_url(self, key: str, expires: int = 3600, *, content_type: str | None = None,
                      disposition: str | None = None) -> str:
        """A time-limited GET link straight to S3 (large file content and share links; see
        docs/aws.md). ``content_type`` and ``disposition`` override the response headers."""
        params = {"Bucket": self.bucket, "Key": key}
        if content_type:
            params["ResponseContentType"] = content_type
        if disposition:
            params["ResponseContentDisposition"] = disposition
        return str(self.s3.generate_presigned_url("get_object", Params=params,
                                                  ExpiresIn=expires))

    def presigned_post(self, key: str, *, content_type: str, metadata: dict[str, str],
                       max_size: int, expires: int = 3600) -> dict[str, Any]:
        """A time-limited browser-style POST straight to S3 (uploads larger than the API's
        payload limit): ``{"url", "fields"}``; the form's ``file`` part goes last. S3 refuses
        another key, type, metadata, or more than ``max_size`` bytes."""
        fields = {"Content-Type": content_type,
                  **{f"x-amz-meta-{k}": v for k, v in metadata.items()}}
        conditions: list[Any] = [{k: v} for k, v in fields.items()]
        conditions.append(["content-length-range", 1, max_size])
        post = self.s3.generate_presigned_post(self.bucket, key, Fields=fields,
                                               Conditions=conditions, ExpiresIn=expires)
        return {"url": post["url"], "fields": post["fields"]}
