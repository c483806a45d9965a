"""template.yaml offline: cfn-lint, the SAM transform, and agreement with the code."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode
from pynamodb.attributes import TTLAttribute
from pynamodb.models import Model

from fleetcam import config
from fleetcam.adapters.aws import models

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """The template as data; cfn-lint's decoder understands !Ref, !GetAtt and !Sub."""
    tpl, problems = decode(str(TEMPLATE))
    assert not problems, problems
    return json.loads(json.dumps(tpl))  # plain dicts and lists


def _resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def _ref(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def test_cfn_lint_passes() -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    cmd = [str(cfn_lint)] if cfn_lint.exists() else [sys.executable, "-m", "cfnlint"]
    r = subprocess.run([*cmd, str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_sam_translator_transforms_offline(template: dict[str, Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
    from samtranslator.translator.transform import transform

    class BundledPolicies:
        def load(self) -> dict[str, str]:
            return get_bundled_managed_policy_map("aws")  # type: ignore[no-any-return]

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    tpl = copy.deepcopy(template)
    for res in tpl["Resources"].values():  # sam package would upload these
        props = res.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://fleetcam-artifacts/{props[key].strip('/')}.zip"
    out = transform(tpl, {}, BundledPolicies())
    res = out["Resources"]
    assert "Transform" not in out
    for name in ("ApiFunction", "IngestFunction", "SweeperFunction", "ReaperFunction"):
        assert res[name]["Type"] == "AWS::Lambda::Function"
    mappings = [r["Properties"] for r in res.values()
                if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    sqs = next(m for m in mappings if "IngestQueue" in json.dumps(m["EventSourceArn"]))
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    stream = next(m for m in mappings if "MediaTable" in json.dumps(m["EventSourceArn"]))
    (flt,) = stream["FilterCriteria"]["Filters"]
    assert json.loads(flt["Pattern"]) == {
        "eventName": ["REMOVE"],
        "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]}}


# -- the template declares what the code uses -------------------------------------------
def _model_table(model: type[Model]) -> dict[str, Any]:
    """What the PynamoDB model implies, in CloudFormation's shape (projections included)."""
    schema = model._get_schema()
    attrs = {d["AttributeName"]: d["AttributeType"] for d in schema["attribute_definitions"]}
    gsis = {}
    for gsi in schema["global_secondary_indexes"]:
        attrs.update({d["AttributeName"]: d["AttributeType"]
                      for d in gsi["attribute_definitions"]})
        gsis[gsi["index_name"]] = (
            {k["AttributeName"]: k["KeyType"] for k in gsi["key_schema"]},
            gsi["projection"]["ProjectionType"],
            sorted(gsi["projection"].get("NonKeyAttributes", [])))
    ttl = [a.attr_name for a in model.get_attributes().values() if isinstance(a, TTLAttribute)]
    return {"keys": {k["AttributeName"]: k["KeyType"] for k in schema["key_schema"]},
            "attributes": attrs, "gsis": gsis, "ttl": ttl[0] if ttl else None}


def _declared_table(props: dict[str, Any]) -> dict[str, Any]:
    ttl = props.get("TimeToLiveSpecification", {})
    return {
        "keys": {k["AttributeName"]: k["KeyType"] for k in props["KeySchema"]},
        "attributes": {d["AttributeName"]: d["AttributeType"]
                       for d in props["AttributeDefinitions"]},
        "gsis": {g["IndexName"]: ({k["AttributeName"]: k["KeyType"] for k in g["KeySchema"]},
                                  g["Projection"]["ProjectionType"],
                                  sorted(g["Projection"].get("NonKeyAttributes", [])))
                 for g in props.get("GlobalSecondaryIndexes", [])},
        "ttl": ttl.get("AttributeName") if ttl.get("Enabled") else None,
    }


def _table_of_model(template: dict[str, Any], model: type[Model]) -> tuple[str, dict[str, Any]]:
    """The table resource whose name the functions get in the model's env variable."""
    env_name = config.AWS_TABLE_ENVS[model.__name__]
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env_name in variables, f"Globals do not set {env_name}"
    logical = _ref(variables[env_name])
    assert logical in template["Resources"], f"{env_name} names no resource"
    table = template["Resources"][logical]
    assert table["Type"] == "AWS::DynamoDB::Table"
    return logical, table["Properties"]


@pytest.mark.parametrize("model", models.MODELS, ids=lambda m: m.__name__)
def test_every_model_has_its_table(template: dict[str, Any], model: type[Model]) -> None:
    logical, props = _table_of_model(template, model)
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert _declared_table(props) == _model_table(model), logical


def test_media_table_streams_ttl_removals_to_the_reaper(template: dict[str, Any]) -> None:
    logical, props = _table_of_model(template, models.MediaModel)
    assert props["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    reaper = template["Resources"]["ReaperFunction"]["Properties"]
    (event,) = reaper["Events"].values()
    assert event["Type"] == "DynamoDB"
    assert event["Properties"]["Stream"] == {"Fn::GetAtt": [logical, "StreamArn"]}
    # a batch that failed every retry lands in the alarmed dead-letter queue, not nowhere
    dlq = template["Globals"]["Function"]["DeadLetterQueue"]["TargetArn"]
    assert event["Properties"]["DestinationConfig"]["OnFailure"]["Destination"] == dlq


def _function_env(template: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    merged = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    merged.update(props.get("Environment", {}).get("Variables", {}))
    return merged


REQUIRED_ENV = [*config.AWS_TABLE_ENVS.values(), config.ENV_MEDIA_BUCKET]


def test_every_function_and_the_gateway_get_the_resource_names(
        template: dict[str, Any]) -> None:
    functions = _resources(template, "AWS::Serverless::Function")
    assert functions
    for name, fn in functions.items():
        env = _function_env(template, fn["Properties"])
        missing = [v for v in REQUIRED_ENV if v not in env]
        assert not missing, f"{name} lacks {missing}"
    (task,) = _resources(template, "AWS::ECS::TaskDefinition").values()
    for container in task["Properties"]["ContainerDefinitions"]:
        names = {e["Name"] for e in container["Environment"]}
        assert not [v for v in REQUIRED_ENV if v not in names], container["Name"]
        assert container["Command"] == ["fleetcam", "gateway"]
        assert config.ENV_ADMIN_TOKEN_SECRET in names  # the ARN; the token is read at start


def test_every_handler_file_is_deployed(template: dict[str, Any]) -> None:
    deployed = set()
    for fn in _resources(template, "AWS::Serverless::Function").values():
        props = fn["Properties"]
        module, _, func = props["Handler"].rpartition(".")
        path = ROOT / props["CodeUri"] / (module.replace(".", "/") + ".py")
        assert path.is_file(), props["Handler"]
        assert f"def {func}(" in path.read_text(), props["Handler"]
        deployed.add(path.resolve())
    on_disk = {p.resolve() for p in (ROOT / "functions").glob("*/app.py")}
    assert on_disk == deployed


def test_everything_builds_with_makefiles(template: dict[str, Any]) -> None:
    """`sam build` without Docker or a local python3.12: every function and layer is built by
    its Makefile (layers with pip's --platform wheels)."""
    runtime = template["Globals"]["Function"]["Runtime"]
    for type_, uri in (("AWS::Serverless::Function", "CodeUri"),
                       ("AWS::Serverless::LayerVersion", "ContentUri")):
        for name, res in _resources(template, type_).items():
            assert res["Metadata"]["BuildMethod"] == "makefile", name
            makefile = ROOT / res["Properties"][uri] / "Makefile"
            assert f"build-{name}:" in makefile.read_text(), makefile
            if type_.endswith("LayerVersion"):
                assert res["Properties"]["CompatibleRuntimes"] == [runtime]


# -- no silent loss: what a stack operation or a stolen function role cannot do (issue 14) --
EPHEMERAL_TABLES = {"ConnectionsTable", "MediaRequestsTable"}
"""Tables whose items live minutes (rebuilt by the gateway): nothing to keep on deletion."""


def test_stack_deletion_or_replacement_keeps_the_media_and_the_data(
        template: dict[str, Any]) -> None:
    kept = {**_resources(template, "AWS::DynamoDB::Table"),
            **_resources(template, "AWS::S3::Bucket")}
    for name, res in kept.items():
        if name in EPHEMERAL_TABLES:
            continue
        assert res.get("DeletionPolicy") == "Retain", name
        assert res.get("UpdateReplacePolicy") == "Retain", name
    props = template["Resources"]["MediaBucket"]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = [r for r in props["LifecycleConfiguration"]["Rules"]
               if "NoncurrentVersionExpiration" in r]
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == {
        "Ref": "DeletedMediaRetentionDays"}


@pytest.fixture(scope="module")
def transformed(template: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation gets it from the SAM transform (roles included)."""
    from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
    from samtranslator.translator.transform import transform

    class BundledPolicies:
        def load(self) -> dict[str, str]:
            return get_bundled_managed_policy_map("aws")  # type: ignore[no-any-return]

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        tpl = copy.deepcopy(template)
        for res in tpl["Resources"].values():
            props = res.get("Properties", {})
            for key in ("CodeUri", "ContentUri"):
                if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                    props[key] = f"s3://fleetcam-artifacts/{props[key].strip('/')}.zip"
        return transform(tpl, {}, BundledPolicies())  # type: ignore[no-any-return]


OBJECT_ACTIONS = {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                  "s3:ListBucket"}
"""Every S3 action a role of the stack may have: objects, never the bucket's configuration
(lifecycle, versioning, policy, encryption, notifications) nor the bucket itself."""
TABLE_ADMIN = ("dynamodb:*", "dynamodb:CreateTable", "dynamodb:DeleteTable",
               "dynamodb:UpdateTable", "dynamodb:UpdateTimeToLive",
               "dynamodb:UpdateContinuousBackups", "dynamodb:RestoreTable")


def _allowed_actions(role: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for policy in role["Properties"].get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            if st["Effect"] == "Allow":
                acts = st["Action"]
                out.update([acts] if isinstance(acts, str) else acts)
    return out


def test_no_role_may_change_the_bucket_or_the_tables(transformed: dict[str, Any]) -> None:
    roles = _resources(transformed, "AWS::IAM::Role")
    assert "ApiFunctionRole" in roles
    for name, role in roles.items():
        actions = _allowed_actions(role)
        assert "*" not in actions, name
        s3 = {a for a in actions if a.lower().startswith("s3:")}
        assert s3 <= OBJECT_ACTIONS, (name, sorted(s3 - OBJECT_ACTIONS))
        assert not [a for a in actions if a in TABLE_ADMIN], name
    api = _allowed_actions(roles["ApiFunctionRole"])
    assert "s3:PutLifecycleConfiguration" not in api and "s3:PutObject" in api


# -- recovery in minutes: each queue's retry timing follows its function (issue 14) ------
def _queue_consumers(template: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Queue logical id -> (function logical id, its SQS event properties)."""
    out = {}
    for name, fn in _resources(template, "AWS::Serverless::Function").items():
        for ev in fn["Properties"].get("Events", {}).values():
            if ev["Type"] == "SQS":
                queue = ev["Properties"]["Queue"]["Fn::GetAtt"][0]
                out[queue] = (name, ev["Properties"])
    return out


def test_photos_and_clips_have_their_own_queues_and_retry_timing(
        template: dict[str, Any]) -> None:
    res = template["Resources"]
    notifications = res["MediaBucket"]["Properties"]["NotificationConfiguration"]
    by_prefix = {c["Filter"]["S3Key"]["Rules"][0]["Value"]: c["Queue"]["Fn::GetAtt"][0]
                 for c in notifications["QueueConfigurations"]}
    # DVR segments are not notified: their thumbnails follow the index's stream, so every
    # root gets them (tests/aws/test_dvr_thumbs.py)
    assert by_prefix == {"media/": "IngestQueue", "raw/": "ClipQueue"}
    consumers = _queue_consumers(template)
    for queue, (function, event) in consumers.items():
        fn = res[function]["Properties"]
        timeout = fn.get("Timeout", template["Globals"]["Function"]["Timeout"])
        q = res[queue]["Properties"]
        # Lambda's advice: six times the function's timeout (throttled batches get retried
        # within it), and no more than that plus a minute
        assert 6 * timeout <= q["VisibilityTimeout"] <= 6 * timeout + 60, queue
        assert q["RedrivePolicy"]["maxReceiveCount"] >= 3, queue
        dlq = q["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert res[dlq]["Properties"]["MessageRetentionPeriod"] == 14 * 86400
        assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    photo_fn, _ = consumers["IngestQueue"]
    clip_fn, clip_event = consumers["ClipQueue"]
    assert photo_fn != clip_fn
    assert res["IngestQueue"]["Properties"]["VisibilityTimeout"] <= 15 * 60  # minutes
    assert clip_event["BatchSize"] == 1  # a clip never shares its timeout
    assert res[clip_fn]["Properties"]["Timeout"] == 900


def test_ephemeral_storage_holds_the_largest_clip(template: dict[str, Any]) -> None:
    """request_video allows 3600 s; at 4 Mbit/s the raw clip is 1.8 GB, and its MP4 after an
    H.265 to H.264 conversion about twice that: both sit in /tmp while packaging."""
    from fleetcam.domain.gateway import CLIP_MAX_DURATION

    raw_mb = CLIP_MAX_DURATION * 4 / 8
    res = template["Resources"]
    consumers = _queue_consumers(template)
    clip_fn, _ = consumers["ClipQueue"]
    photo_fn, _ = consumers["IngestQueue"]
    assert res[clip_fn]["Properties"]["EphemeralStorage"]["Size"] >= 3 * raw_mb
    assert res[photo_fn]["Properties"]["EphemeralStorage"]["Size"] >= 2 * raw_mb


def test_every_gateway_listener_reaches_the_task(template: dict[str, Any]) -> None:
    """Each port the gateway listens on (signalling, media, alarm attachments) has an NLB
    listener, a target group the service registers the task in, a security-group rule and a
    container port; the attachment port is the one the task is told."""
    from fleetcam.config import (DEFAULTS, ENV_ATTACHMENT_PORT, ENV_TELTONIKA_CAMERA_PORT,
                                 ENV_TELTONIKA_PORT)

    res = template["Resources"]
    task = res["GatewayTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    container_ports = {p["ContainerPort"] for p in task["PortMappings"]}
    env = {e["Name"]: e["Value"] for e in task["Environment"]}
    service_ports = {lb["ContainerPort"] for lb in
                     res["GatewayService"]["Properties"]["LoadBalancers"]}
    listener_ports = {r["Properties"]["Port"] for r in
                      _resources(template, "AWS::ElasticLoadBalancingV2::Listener").values()}
    ports = [int(env[e]) for e in (ENV_ATTACHMENT_PORT, ENV_TELTONIKA_PORT,
                                   ENV_TELTONIKA_CAMERA_PORT)]
    assert ports == [int(DEFAULTS[e]) for e in (ENV_ATTACHMENT_PORT, ENV_TELTONIKA_PORT,
                                                ENV_TELTONIKA_CAMERA_PORT)]
    ranges = [(r["FromPort"], r["ToPort"]) for r in
              res["GatewaySecurityGroup"]["Properties"]["SecurityGroupIngress"]]
    for port in (6808, 7078, *ports):
        assert port in container_ports and port in service_ports
        assert port in listener_ports and any(a <= port <= b for a, b in ranges)


# -- secrets: read at cold start, never in an environment (issue 14) -------------------
def test_no_secret_in_any_function_or_task_environment(template: dict[str, Any]) -> None:
    res = template["Resources"]
    envs = {name: _function_env(template, fn["Properties"])
            for name, fn in _resources(template, "AWS::Serverless::Function").items()}
    for task in _resources(template, "AWS::ECS::TaskDefinition").values():
        for container in task["Properties"]["ContainerDefinitions"]:
            assert not container.get("Secrets"), "ECS injects Secrets as environment variables"
            envs[container["Name"]] = {e["Name"]: e["Value"] for e in container["Environment"]}
    for name, env in envs.items():
        assert config.ENV_ADMIN_TOKEN not in env, name
        for key, value in env.items():
            text = json.dumps(value)
            assert "resolve:secretsmanager" not in text and "resolve:ssm-secure" not in text, \
                (name, key)
            if "AdminTokenSecret" in text:  # only ever as the ARN the code reads it from
                assert key == config.ENV_ADMIN_TOKEN_SECRET and value == {
                    "Ref": "AdminTokenSecret"}, (name, key)
    assert envs["ApiFunction"][config.ENV_ADMIN_TOKEN_SECRET] == {"Ref": "AdminTokenSecret"}
    assert res["AdminTokenSecret"]["Type"] == "AWS::SecretsManager::Secret"


# -- alarms and logs (issue 14) ---------------------------------------------------------
def test_every_log_group_expires_and_every_function_logs_into_one(
        template: dict[str, Any]) -> None:
    groups = _resources(template, "AWS::Logs::LogGroup")
    for name, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 30
    for name, fn in _resources(template, "AWS::Serverless::Function").items():
        target = fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert target in groups, name


def _alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [a["Properties"] for a in _resources(template, "AWS::CloudWatch::Alarm").values()]


def test_alarms_cover_dead_letters_functions_gateway_and_iot(
        template: dict[str, Any]) -> None:
    alarms = _alarms(template)
    watched = {(a["MetricName"], json.dumps(a.get("Dimensions", []), sort_keys=True))
               for a in alarms}
    for name in _resources(template, "AWS::Serverless::Function"):
        for metric in ("Errors", "Throttles"):
            dims = [{"Name": "FunctionName", "Value": {"Ref": name}}]
            assert (metric, json.dumps(dims, sort_keys=True)) in watched, (name, metric)
    queues = _resources(template, "AWS::SQS::Queue")
    dlqs = {q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            for q in queues.values() if "RedrivePolicy" in q["Properties"]}
    # and the queue of failed asynchronous invocations (Globals: DeadLetterQueue)
    dlqs.add(template["Globals"]["Function"]["DeadLetterQueue"]["TargetArn"]["Fn::GetAtt"][0])
    assert dlqs
    for dlq in dlqs:
        dims = [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}]
        assert ("ApproximateNumberOfMessagesVisible", json.dumps(dims, sort_keys=True)) \
            in watched, dlq
    metrics = {a["MetricName"] for a in alarms}
    assert {"UnHealthyHostCount", "HealthyHostCount", "IotPublishFailures"} <= metrics
    filters = _resources(template, "AWS::Logs::MetricFilter")
    logged = {f["Properties"]["LogGroupName"]["Ref"] for f in filters.values()
              if f["Properties"]["MetricTransformations"][0]["MetricName"]
              == "IotPublishFailures"}
    assert logged == set(_resources(template, "AWS::Logs::LogGroup")) - {"ApiAccessLogs"}
    from fleetcam.adapters.aws import iot  # the filter matches what the bus logs on failure
    import inspect
    assert '"iot publish to' in inspect.getsource(iot)
    topic = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert all(a["AlarmActions"] == topic for a in alarms)



# -- API Gateway REST (issue 14) --------------------------------------------------------
def test_the_api_is_api_gateway_rest_with_throttling_access_logs_and_usage_plan(
        template: dict[str, Any], transformed: dict[str, Any]) -> None:
    assert not _resources(template, "AWS::Serverless::HttpApi")
    (name, api), = _resources(template, "AWS::Serverless::Api").items()
    events = [ev for fn in _resources(template, "AWS::Serverless::Function").values()
              for ev in fn["Properties"].get("Events", {}).values()
              if ev["Type"] in ("Api", "HttpApi")]
    assert events and all(ev["Type"] == "Api" and ev["Properties"]["RestApiId"] == {"Ref": name}
                          for ev in events)
    out = transformed["Resources"]
    (stage,) = [r["Properties"] for r in out.values() if r["Type"] == "AWS::ApiGateway::Stage"]
    (settings,) = stage["MethodSettings"]
    params = template["Parameters"]  # the transform resolves parameters to their defaults
    assert settings["ThrottlingRateLimit"] in ({"Ref": "ApiRateLimit"},
                                               params["ApiRateLimit"]["Default"])
    assert settings["ThrottlingBurstLimit"] in ({"Ref": "ApiBurstLimit"},
                                                params["ApiBurstLimit"]["Default"])
    assert stage["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    assert '"status":"$context.status"' in stage["AccessLogSetting"]["Format"]
    (plan,) = [r["Properties"] for r in out.values() if r["Type"] == "AWS::ApiGateway::UsagePlan"]
    assert plan["Throttle"]["RateLimit"] in ({"Ref": "ApiRateLimit"},
                                             params["ApiRateLimit"]["Default"])
    (waf,) = _resources(template, "AWS::WAFv2::WebACLAssociation").values()
    assert waf["Condition"] == "HasWebAcl"
    assert template["Parameters"]["WebAclArn"]["Default"] == ""
    # the function answers before the integration's 29 s limit
    assert template["Resources"]["ApiFunction"]["Properties"]["Timeout"] <= 29


# -- cost (issue 14) -------------------------------------------------------------------
def test_cost_switches_default_to_the_cheap_side(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    nlb = template["Resources"]["GatewayLoadBalancer"]["Properties"]
    attrs = {a["Key"]: a["Value"] for a in nlb["LoadBalancerAttributes"]}
    assert attrs["load_balancing.cross_zone.enabled"] == {"Ref": "GatewayCrossZone"}
    assert params["GatewayCrossZone"]["Default"] == "false"
    (rule,) = _resources(template, "AWS::XRay::SamplingRule").values()
    assert rule["Properties"]["SamplingRule"]["FixedRate"] == {"Ref": "TraceSampleRate"}
    assert params["TraceSampleRate"]["Default"] <= 0.05
    # no reservoir by default: one trace a second is 2.6 million a month whatever the fleet
    assert rule["Properties"]["SamplingRule"]["ReservoirSize"] == {"Ref": "TraceReservoirPerSecond"}
    assert params["TraceReservoirPerSecond"]["Default"] == 0
