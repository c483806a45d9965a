"""SQLite ExportJobStore: DVR export jobs (domain/dvrjobs.py)."""
from __future__ import annotations

import json

from fleetcam.adapters.local.db import Database
from fleetcam.domain.dvrjobs import RUNNING, ExportJob

SCHEMA = """
CREATE TABLE IF NOT EXISTS dvr_export_jobs (
    media TEXT NOT NULL,
    job_id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (media, job_id)
) WITHOUT ROWID;
"""


class SqliteExportJobStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.conn().executescript(SCHEMA)

    def create(self, job: ExportJob) -> None:
        with self.db.tx() as c:
            c.execute("INSERT INTO dvr_export_jobs (media, job_id, data) VALUES (?,?,?)",
                      (job.media, job.job_id, json.dumps(job.to_store())))

    def get(self, media: str, job_id: str) -> ExportJob | None:
        row = self.db.conn().execute("SELECT data FROM dvr_export_jobs WHERE media=? AND "
                                     "job_id=?", (media, job_id)).fetchone()
        return ExportJob.from_store(json.loads(row[0])) if row else None

    def list(self, media: str, limit: int = 50) -> list[ExportJob]:
        rows = self.db.conn().execute("SELECT data FROM dvr_export_jobs WHERE media=? ORDER BY "
                                      "job_id DESC LIMIT ?", (media, limit))
        return [ExportJob.from_store(json.loads(r[0])) for r in rows]

    def claim(self, media: str, job_id: str, now: float) -> ExportJob | None:
        with self.db.tx() as c:
            row = c.execute("SELECT data FROM dvr_export_jobs WHERE media=? AND job_id=?",
                            (media, job_id)).fetchone()
            job = ExportJob.from_store(json.loads(row[0])) if row else None
            if job is None or not job.claimable(now):
                return None
            job = job.with_changes(status=RUNNING, updated_at=now)
            c.execute("UPDATE dvr_export_jobs SET data=? WHERE media=? AND job_id=?",
                      (json.dumps(job.to_store()), media, job_id))
        return job

    def save(self, job: ExportJob) -> None:
        with self.db.tx() as c:
            c.execute("UPDATE dvr_export_jobs SET data=? WHERE media=? AND job_id=?",
                      (json.dumps(job.to_store()), job.media, job.job_id))

    def purge(self, media: str, before: float) -> int:
        gone = [j.job_id for j in self.list(media, limit=1000)
                if j.finished and j.updated_at < before]
        with self.db.tx() as c:
            c.executemany("DELETE FROM dvr_export_jobs WHERE media=? AND job_id=?",
                          [(media, g) for g in gone])
        return len(gone)
