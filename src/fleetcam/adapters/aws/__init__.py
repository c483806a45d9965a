"""AWS adapters: S3 (boto3), DynamoDB (PynamoDB), IoT Core (iot-data)."""
