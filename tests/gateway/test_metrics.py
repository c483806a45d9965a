"""The gateway's connection counts as CloudWatch embedded metrics (the ECS scaling input)."""
from __future__ import annotations

import json
from types import SimpleNamespace

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
