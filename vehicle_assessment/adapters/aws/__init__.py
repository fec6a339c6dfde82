"""AWS adapters behind the ports: S3, SageMaker, OpenSearch Serverless, Bedrock and Polly.

Each adapter takes its client in the constructor (tests pass moto or Stubber clients) and offers a
``from_settings`` factory that builds the real boto3/opensearch-py client.
"""
