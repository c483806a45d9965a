"""API Gateway (REST, proxy integration) → Mangum → the FastAPI app over the AWS container.

Mangum also takes HTTP API (payload v2) events, so either front works."""
from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from mangum import Mangum

from fleetcam.api.app import create_app
from fleetcam.config import Settings
from fleetcam.adapters.aws.metrics import count_commands
from fleetcam.runtime.aws import build_aws

logger, tracer, metrics = Logger(), Tracer(), Metrics()
CONTAINER = build_aws(Settings.from_env())  # cold start, once
count_commands(CONTAINER.commands, metrics)  # CommandsQueued, ...Answered, ...TimedOut
ASGI = Mangum(create_app(CONTAINER), lifespan="off")


def own_url(ctx: dict[str, Any]) -> str:
    """The API's default URL as the caller reached it: a REST API's includes its stage."""
    stage = ctx.get("stage", "$default")
    return f"https://{ctx['domainName']}" + ("" if stage == "$default" else f"/{stage}")


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not CONTAINER.settings.public_url:  # no custom domain: links name the API's own host
        CONTAINER.media.base_url = own_url(event["requestContext"])
    return ASGI(event, context)  # type: ignore[no-any-return]
