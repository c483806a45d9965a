"""AWS IoT Core custom authorizer: a fleetcam token as the MQTT username (``FlespiToken X`` or
``X``) becomes a policy allowing only that token's topics (services/iot_authorizer.py)."""
from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from fleetcam.config import Settings
from fleetcam.runtime.aws import build_aws
from fleetcam.services.iot_authorizer import authorize

logger = Logger()
SETTINGS = Settings.from_env()
CONTAINER = build_aws(SETTINGS)  # cold start, once


@logger.inject_lambda_context(log_event=False)  # the event holds the token: never logged
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    partition, _, region, account = context.invoked_function_arn.split(":")[1:5]
    return authorize(event, CONTAINER.access.authenticate, prefix=SETTINGS.topic_prefix,
                     arn=f"arn:{partition}:iot:{region}:{account}", now=time.time())
