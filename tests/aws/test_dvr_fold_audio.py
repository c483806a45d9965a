"""A device clip folded into the archive on AWS keeps its audio (moto's server): the raw clip's
object-created event reaches the packager function (functions/ingest), which packages it and
folds its video and AAC into the recorded stream's S3 segments and DynamoDB index; a download
across the recorded part and the clip has one init and continuous audio, and decodes."""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from cfnlint.decode import decode

from fleetcam.domain import dvr, keys
from fleetcam.media import archive, fmp4
from fleetcam.runtime.dvrplay import playback
from fleetcam.services.media import META_KEY
from tests import dvrgen
from tests.aws.conftest import ROOT, Aws, LambdaContext, load_event
from tests.dvr_play.test_fold_audio import raw_clip
from tests.mediagen import decode_errors, probe_streams

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
Loader = Callable[[str], ModuleType]
T = 1_699_996_000_000


def test_packager_folds_a_clip_with_its_audio_into_the_archive(
        aws: Aws, load_handler: Loader, context: LambdaContext, tmp_path: Path) -> None:
    ingest = load_handler("ingest")
    c = ingest.CONTAINER
    (device,) = c.devices.create([{"ident": "013900000009"}])
    name = f"{device.id}-1"
    c.dvr.put_stream(name, {"dvr": {"root": "dvr"}})
    # 4 s recorded by the gateway (video and G.711 audio as AAC-LC)
    init, gops = dvrgen.encoded()
    init = dvrgen.with_audio(init, dvrgen.tone(T, 4)[0])
    ikey = dvr.init_key(name, fmp4.init_digest(init))
    c.dvr_storage.put("dvr", ikey, init, content_type="video/mp4")
    rec, data = dvrgen.segment(name, T, 4, gops=gops, init_key=ikey, audio=True)
    c.dvr_storage.put("dvr", rec.key, data, content_type="video/iso.segment")
    assert c.dvr_index.add(rec)
    # the next 4 s fetched from the device's SD card (request_video), as the gateway stores it
    clip = raw_clip(T + 4000, 4).getvalue().replace(b'"device_id":9', b'"device_id":%d'
                                                      % device.id)
    key = keys.raw_key(device.id, "0f0f0f0f0f0f4f0f8f0f0f0f0f0f0f0f")
    aws.client("s3").put_object(Bucket=aws.bucket, Key=key, Body=clip,
                                ContentType="application/octet-stream",
                                Metadata={META_KEY: json.dumps({"channel": 1})})
    event = copy.deepcopy(load_event("sqs-s3-object-created.json"))
    body = json.loads(event["Records"][0]["body"])
    body["Records"][0]["s3"]["object"]["key"] = key
    body["Records"][0]["s3"]["object"]["size"] = len(clip)
    event["Records"][0]["body"] = json.dumps(body)
    assert ingest.handler(event, context) == {"batchItemFailures": []}

    folded = [s for s in c.dvr_index.segments(name) if s.source == dvr.SOURCE_DEVICE]
    assert folded and all(s.tracks == (1, 2) and s.init_key == ikey for s in folded), folded
    dl = playback(c).download(name, T // 1000, 8)
    assert not dl.layout.gaps
    path = tmp_path / "across.mp4"
    path.write_bytes(b"".join(archive.render(dl.layout, dl.read)))
    streams = probe_streams(path)
    assert streams["audio"]["codec_name"] == "aac"
    assert abs(float(streams["audio"]["start_time"]) - float(streams["video"]["start_time"])) \
        < 0.1
    assert int(streams["video"]["nb_read_frames"]) == 200
    assert int(streams["audio"]["nb_read_frames"]) >= (8000 - 200) // 128
    assert decode_errors(path) == ""


def test_the_packager_may_use_the_dvr_tables_it_folds_clips_into() -> None:
    """The packager function reads the streams and writes segment rows and intents: its role
    names those tables (moto does not check IAM; a deployed stack would)."""
    tpl, problems = decode(str(ROOT / "template.yaml"))
    assert not problems
    tpl = json.loads(json.dumps(tpl))
    policies = json.dumps(tpl["Resources"]["PackagerFunction"]["Properties"]["Policies"])
    for table in ("DvrStreamsTable", "DvrSegmentsTable", "DvrGcTable"):
        assert table in policies, table
