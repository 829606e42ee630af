"""Documentation of the AWS options every panzoto-ops module takes (module_utils/panzoto/aws.py).

They are amazon.aws's connection options, with the same names, aliases and
environment fallbacks, so one module_defaults block serves both.
"""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  region:
    description: AWS region. Falls back to E(AWS_REGION) and E(AWS_DEFAULT_REGION).
    type: str
    aliases: [aws_region]
  endpoint_url:
    description:
      - URL of the AWS endpoint, for a local or compatible one.
      - Falls back to E(AWS_ENDPOINT_URL), then E(AWS_URL) (amazon.aws's name).
    type: str
    aliases: [aws_endpoint_url]
  access_key:
    description:
      - AWS access key id. Falls back to E(AWS_ACCESS_KEY_ID), then E(AWS_ACCESS_KEY); without it the default credential
        chain is used.
      - Cannot be combined with O(profile).
    type: str
    aliases: [aws_access_key_id, aws_access_key]
  secret_key:
    description: AWS secret access key. Falls back to E(AWS_SECRET_ACCESS_KEY), then E(AWS_SECRET_KEY). Never logged.
    type: str
    aliases: [aws_secret_access_key, aws_secret_key]
  session_token:
    description: AWS session token for temporary credentials. Falls back to E(AWS_SESSION_TOKEN). Never logged.
    type: str
    aliases: [aws_session_token]
  profile:
    description:
      - Named profile from the AWS config files. Falls back to E(AWS_PROFILE), then E(AWS_DEFAULT_PROFILE).
      - Cannot be combined with O(access_key), O(secret_key) or O(session_token).
    type: str
    aliases: [aws_profile]
  aws_ca_bundle:
    description:
      - A PEM bundle of CA certificates to validate the endpoint's TLS certificate with (behind a TLS-intercepting
        proxy, for example). Falls back to E(AWS_CA_BUNDLE).
    type: path
  validate_certs:
    description:
      - Whether to validate the endpoint's TLS certificate. Setting it to V(false) is strongly discouraged; give
        O(aws_ca_bundle) instead.
    type: bool
    default: true
  aws_config:
    description:
      - Settings of botocore's C(Config) (for example C(proxies), C(connect_timeout), C(retries)), merged over the
        module's own (standard retry mode with O(max_attempts), a connection pool sized for its parallelism, 5 s connect
        and 60 s read timeouts).
    type: dict
  debug_botocore_endpoint_logs:
    description:
      - Return the distinct C(service:Operation) calls the module made as C(resource_actions), for writing IAM policies.
      - Falls back to E(ANSIBLE_DEBUG_BOTOCORE_LOGS).
    type: bool
    default: false
  max_attempts:
    description: Attempts per AWS request, retries of throttling and 5xx (jittered exponential backoff) included.
    type: int
    default: 5
requirements:
  - boto3
notes:
  - The options are those of the amazon.aws collection, but the modules do not need it; ansible-core and boto3
    are enough.
"""
