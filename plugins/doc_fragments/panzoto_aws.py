"""Documentation of the AWS options every panzoto-ops module takes (module_utils/panzoto_aws.py)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  region:
    description: AWS region. Falls back to E(AWS_REGION) and E(AWS_DEFAULT_REGION).
    type: str
    aliases: [aws_region]
  endpoint_url:
    description: URL of the AWS endpoint, for a local or compatible one. Falls back to E(AWS_ENDPOINT_URL).
    type: str
    aliases: [aws_endpoint_url]
  access_key:
    description: AWS access key id. Falls back to E(AWS_ACCESS_KEY_ID); without it the default credential chain is used.
    type: str
    aliases: [aws_access_key_id, aws_access_key]
  secret_key:
    description: AWS secret access key. Falls back to E(AWS_SECRET_ACCESS_KEY). Never logged.
    type: str
    aliases: [aws_secret_access_key, aws_secret_key]
  session_token:
    description: AWS session token. Falls back to E(AWS_SESSION_TOKEN). Never logged.
    type: str
    aliases: [aws_session_token]
  profile:
    description: Named profile from the AWS config files. Falls back to E(AWS_PROFILE).
    type: str
    aliases: [aws_profile]
  max_attempts:
    description: Attempts per AWS request, retries of throttling and 5xx (jittered exponential backoff) included.
    type: int
    default: 5
requirements:
  - boto3
"""
