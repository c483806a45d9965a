"""DVR exports to S3: one multipart upload fed as the file is produced (no temporary file),
completed only at the end (an aborted export leaves no object), never over an existing key."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleetcam.errors import Conflict, Invalid
from fleetcam.services.dvrexport import Target

PART = 16 * 1024 * 1024
"""Bytes per uploaded part (S3: at least 5 MiB, at most 10,000 parts: 160 GB here)."""


class S3Sink:
    def __init__(self, target: Target, client: Any) -> None:
        from botocore.exceptions import ClientError

        self.s3, self.bucket, self.key = client, target.bucket, target.key
        self._error = ClientError
        try:
            client.head_object(Bucket=self.bucket, Key=self.key)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise Invalid(f"cannot use s3://{self.bucket}: "
                              f"{e.response.get('Error', {}).get('Code')}", field="path") from None
        else:
            raise Conflict(f"s3://{self.bucket}/{self.key} exists already: exports never "
                           "overwrite")
        try:
            self.upload = client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType="video/mp4")["UploadId"]
        except ClientError as e:
            raise Invalid(f"cannot write s3://{self.bucket}/{self.key}: "
                          f"{e.response.get('Error', {}).get('Code')}", field="path") from None
        self.buf = bytearray()
        self.parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= PART:
            self._flush()

    def _flush(self) -> None:
        n = len(self.parts) + 1
        r = self.s3.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload,
                                PartNumber=n, Body=bytes(self.buf))
        self.parts.append({"ETag": r["ETag"], "PartNumber": n})
        self.buf.clear()

    def commit(self) -> None:
        if self.buf or not self.parts:
            self._flush()
        try:
            self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload,
                MultipartUpload={"Parts": self.parts}, IfNoneMatch="*")
        except self._error as e:
            if e.response.get("Error", {}).get("Code") == "PreconditionFailed":
                self.abort()
                raise Conflict(f"s3://{self.bucket}/{self.key} appeared during the export") \
                    from None
            raise

    def abort(self) -> None:
        try:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key,
                                           UploadId=self.upload)
        except Exception:  # noqa: BLE001 - S3's lifecycle rule removes stale uploads too
            pass


def s3_sink_factory(client_for: Callable[[Target], Any]) -> Callable[[Target], S3Sink]:
    """``client_for(target)`` builds the boto3 client (URL credentials and endpoint, else the
    environment's)."""
    return lambda target: S3Sink(target, client_for(target))
