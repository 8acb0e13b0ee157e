"""What the AWS adapters share: configured boto3 clients and a thread pool for their calls."""
