"""The gateway's connection counts as CloudWatch embedded metrics (the ECS scaling input)."""
from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from fleetcam.gateway.server import connection_metrics


def test_counts_authenticated_signalling_and_media_connections() -> None:
    gw = SimpleNamespace(sessions_808=[SimpleNamespace(device=object()),
                                       SimpleNamespace(device=object()),
                                       SimpleNamespace(device=None)],  # not authenticated yet
                         sessions_1078=[SimpleNamespace()])
    doc = json.loads(json.dumps(connection_metrics(gw, 1_700_000_000.5)))  # type: ignore[arg-type]
    assert doc["Connections"] == 2 and doc["MediaConnections"] == 1
    spec = doc["_aws"]["CloudWatchMetrics"][0]
    assert doc["_aws"]["Timestamp"] == 1_700_000_000_500
    assert spec["Namespace"] == "fleetcam" and spec["Dimensions"] == [["Service"]]
    assert doc["Service"] == "gateway"
    assert {m["Name"] for m in spec["Metrics"]} == {"Connections", "MediaConnections"}


def test_the_template_scales_on_the_metric_the_gateway_prints() -> None:
    from pathlib import Path

    from cfnlint.decode import decode

    template, _ = decode(str(Path(__file__).parents[2] / "template.yaml"))
    policy = template["Resources"]["GatewayConnectionScaling"]["Properties"]
    spec = policy["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
    doc = connection_metrics(SimpleNamespace(sessions_808=set(), sessions_1078=set()), 0)  # type: ignore[arg-type]
    assert spec["Namespace"] == doc["_aws"]["CloudWatchMetrics"][0]["Namespace"]
    assert spec["MetricName"] == "Connections"
    assert spec["Dimensions"] == [{"Name": "Service", "Value": doc["Service"]}]
    task = template["Resources"]["GatewayTaskDefinition"]["Properties"]
    env = {e["Name"]: e["Value"] for e in task["ContainerDefinitions"][0]["Environment"]}
    assert env["FLEETCAM_EMF_METRICS"] == "1"


def _emf(out: str) -> dict[str, float]:
    """Sum of each metric over the embedded-metric-format lines printed."""
    totals: dict[str, float] = {}
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        doc = json.loads(line)
        for spec in doc.get("_aws", {}).get("CloudWatchMetrics", []):
            assert spec["Namespace"] == "fleetcam"
            for m in spec["Metrics"]:
                v = doc[m["Name"]]
                totals[m["Name"]] = totals.get(m["Name"], 0) + (sum(v) if isinstance(v, list)
                                                                 else v)
    return totals


def test_the_gateway_counts_commands_by_outcome(tmp_path: Any, capsys: Any) -> None:
    """Sent, answered, failed, canceled, expired: what the gateway's store calls do to the
    queue, flushed as powertools metrics with its connection counts (FLEETCAM_EMF_METRICS)."""
    import time

    from fleetcam.adapters.local.clock import ManualClock
    from fleetcam.gateway.server import Gateway
    from fleetcam.runtime.local import build_local
    from tests.e2e_local import make_settings

    clock = ManualClock(time.time())
    c = build_local(make_settings(tmp_path / "data", emf_metrics=True), clock=clock)
    try:
        gw = Gateway(c)
        assert gw._flush_command_metrics is not None
        (d,) = c.devices.create([{"ident": "013900000001"}])
        cmds = c.commands.enqueue([d.id], [{"name": "take_photo", "properties": {"channel": 1},
                                           "ttl": 60}] * 5)
        answered, failed, canceled, expiring, _ = cmds
        for cmd in (answered, failed):
            sent = c.commands.mark_sent(cmd, 7)
            assert sent is not None
            c.commands.finish(sent, cmd is answered, {"result": 0 if cmd is answered else 1})
        c.commands.cancel([d.id], [canceled.id])
        clock.advance(120)  # the other two pass their ttl
        capsys.readouterr()
        assert gw._flush_command_metrics()
        totals = _emf(capsys.readouterr().out)
        assert totals == {"CommandsQueued": 5, "CommandsSent": 2, "CommandsAnswered": 1,
                          "CommandsFailed": 1, "CommandsCanceled": 1}
        assert c.commands.expire() == 2
        assert gw._flush_command_metrics()
        assert _emf(capsys.readouterr().out) == {"CommandsExpired": 2}
        assert not gw._flush_command_metrics()  # nothing new: nothing printed
        assert capsys.readouterr().out == ""
    finally:
        c.extras["db"].close_all()


def test_without_emf_metrics_the_gateway_counts_nothing(tmp_path: Any) -> None:
    from fleetcam.gateway.server import Gateway
    from fleetcam.runtime.local import build_local
    from tests.e2e_local import make_settings

    c = build_local(make_settings(tmp_path / "data"))
    try:
        gw = Gateway(c)
        assert gw._flush_command_metrics is None and not c.commands.outcome_listeners
    finally:
        c.extras["db"].close_all()
