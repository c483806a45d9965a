"""DynamoDB ExportJobStore: DVR export jobs as items of the DvrSegments table, beside the
stream's segments (``segment_id = "#export:{job_id}"``: sorts before every segment id, so no
segment query meets them), as ``#usage`` and ``#watch`` are."""
from __future__ import annotations

from pynamodb.exceptions import PutError

from fleetcam.adapters.aws.models import DvrSegmentsModel
from fleetcam.domain.dvrjobs import RUNNING, ExportJob

PREFIX = "#export:"


def _model(job: ExportJob) -> DvrSegmentsModel:
    return DvrSegmentsModel(stream=job.media, segment_id=PREFIX + job.job_id,
                            data=job.to_store(), job_status=job.status,
                            job_beat=job.updated_at)


class DynamoExportJobStore:
    def create(self, job: ExportJob) -> None:
        _model(job).save(condition=DvrSegmentsModel.segment_id.does_not_exist())

    def get(self, media: str, job_id: str) -> ExportJob | None:
        try:
            m = DvrSegmentsModel.get(media, PREFIX + job_id, consistent_read=True)
        except DvrSegmentsModel.DoesNotExist:
            return None
        return ExportJob.from_store(m.data)

    def list(self, media: str, limit: int = 50) -> list[ExportJob]:
        out = [ExportJob.from_store(m.data) for m in DvrSegmentsModel.query(
            media, DvrSegmentsModel.segment_id.startswith(PREFIX), scan_index_forward=False,
            limit=limit, consistent_read=True)]
        return out[:limit]

    def claim(self, media: str, job_id: str, now: float) -> ExportJob | None:
        job = self.get(media, job_id)
        if job is None or not job.claimable(now):
            return None
        new = job.with_changes(status=RUNNING, updated_at=now)
        try:  # only if nobody claimed or beat since we read it
            _model(new).save(condition=(DvrSegmentsModel.job_status == job.status)
                             & (DvrSegmentsModel.job_beat == job.updated_at))
        except PutError as e:
            if "ConditionalCheckFailed" in str(e):
                return None
            raise
        return new

    def save(self, job: ExportJob) -> None:
        _model(job).save()

    def purge(self, media: str, before: float) -> int:
        gone = [j for j in self.list(media, limit=1000) if j.finished and j.updated_at < before]
        with DvrSegmentsModel.batch_write() as batch:
            for j in gone:
                batch.delete(DvrSegmentsModel(stream=media, segment_id=PREFIX + j.job_id))
        return len(gone)
