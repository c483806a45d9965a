"""API Gateway (HTTP API, payload v2) → Mangum → the FastAPI app over the AWS container."""
from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from mangum import Mangum

from fleetcam.api.app import create_app
from fleetcam.config import Settings
from fleetcam.runtime.aws import build_aws

logger, tracer, metrics = Logger(), Tracer(), Metrics()
CONTAINER = build_aws(Settings.from_env())  # cold start, once
ASGI = Mangum(create_app(CONTAINER), lifespan="off")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not CONTAINER.settings.public_url:  # no custom domain: links name the API's own host
        CONTAINER.media.base_url = f"https://{event['requestContext']['domainName']}"
    return ASGI(event, context)  # type: ignore[no-any-return]
