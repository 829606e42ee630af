"""AWS access for every panzoto-ops module: the one place clients are built.

Options are amazon.aws's, all of them (region, endpoint_url, access_key, ...,
aws_ca_bundle, validate_certs, aws_config, debug_botocore_endpoint_logs) with
the same aliases and environment fallbacks, so module_defaults written for one
work for the other. The modules do not depend on the collection: a control node
with ansible-core alone runs them. Throttling and 5xx responses are retried by botocore's "standard"
mode (jittered exponential backoff); errors become one line that says what to do.
"""

from __future__ import annotations

import os
import re
import threading

from ansible.module_utils.basic import env_fallback, missing_required_lib

try:
    import boto3
    import botocore.exceptions
    import botocore.session
    from botocore.config import Config
    from botocore.loaders import Loader

    HAS_BOTO3 = True
except ImportError:  # reported by require_boto3()
    HAS_BOTO3 = False
    Loader = object

# amazon.aws's connection options, all of them, with its aliases and environment
# fallbacks (AWS_ENDPOINT_URL first: botocore itself reads it), plus max_attempts,
# this project's retry budget. tests/unit/test_aws_options.py compares the two.
AWS_ARGUMENT_SPEC = dict(
    region=dict(
        type="str",
        aliases=["aws_region"],
        fallback=(env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION"]),
    ),
    endpoint_url=dict(
        type="str",
        aliases=["aws_endpoint_url"],
        fallback=(env_fallback, ["AWS_ENDPOINT_URL", "AWS_URL"]),
    ),
    access_key=dict(
        type="str",
        aliases=["aws_access_key_id", "aws_access_key"],
        fallback=(env_fallback, ["AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"]),
        no_log=False,
    ),
    secret_key=dict(
        type="str",
        aliases=["aws_secret_access_key", "aws_secret_key"],
        fallback=(env_fallback, ["AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"]),
        no_log=True,
    ),
    session_token=dict(
        type="str",
        aliases=["aws_session_token"],
        fallback=(env_fallback, ["AWS_SESSION_TOKEN"]),
        no_log=True,
    ),
    profile=dict(type="str", aliases=["aws_profile"], fallback=(env_fallback, ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"])),
    validate_certs=dict(type="bool", default=True),
    aws_ca_bundle=dict(type="path", fallback=(env_fallback, ["AWS_CA_BUNDLE"])),
    aws_config=dict(type="dict"),
    debug_botocore_endpoint_logs=dict(
        type="bool", default=False, fallback=(env_fallback, ["ANSIBLE_DEBUG_BOTOCORE_LOGS"])
    ),
    max_attempts=dict(type="int", default=5),
)

# Error codes that mean "the same request may succeed later"; botocore retries
# them itself, and the modules' own loops (unprocessed items, partial batch
# failures) use this list to decide what to try again.
RETRYABLE_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "InternalError",
        "InternalServerError",
        "ServiceUnavailable",
        "RequestTimeout",
    }
)


def require_boto3(module) -> None:
    if not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"))


def validate_aws_params(module) -> None:
    """Fail early, changing nothing, on options that cannot work together."""
    params = module.params
    if params.get("profile") and (params.get("access_key") or params.get("secret_key") or params.get("session_token")):
        # As amazon.aws: a profile and explicit keys (options or AWS_ACCESS_KEY_ID...) contradict each other.
        module.fail_json(
            msg="profile cannot be combined with access_key/secret_key/session_token: use one or the other."
        )
    if bool(params.get("access_key")) != bool(params.get("secret_key")):
        module.fail_json(msg="access_key and secret_key must be given together (or neither, to use the default chain).")
    if params.get("max_attempts") is not None and params["max_attempts"] < 1:
        module.fail_json(msg="max_attempts must be 1 or more.")
    endpoint = params.get("endpoint_url")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        module.fail_json(msg=f"endpoint_url must start with http:// or https://, got {endpoint!r}.")


class ServiceLoader(Loader):
    """botocore's data loader, made to look for the one service a client is for instead of listing them all.

    Loader.load_service_model checks that a service exists by listing every service botocore ships (some
    450 directories listed and stat'ed, for the model and again for the endpoint rules: about 10 ms of CPU
    for a module's first client). Here that check looks at the service's own directories only, with the
    same test (a directory of that name in a search path, holding an API version directory with the
    type's file). A service found nowhere gets botocore's full listing, and its UnknownServiceError.
    Everything else, the models loaded included, is botocore's.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._loading = threading.local()

    def load_service_model(self, service_name, *args, **kwargs):
        previous = getattr(self._loading, "service", None)
        self._loading.service = service_name
        try:
            return super().load_service_model(service_name, *args, **kwargs)
        finally:
            self._loading.service = previous

    def list_available_services(self, type_name):
        # Asked by load_service_model, whose only question is whether its service is in the list.
        service = getattr(self._loading, "service", None)
        if service is not None and self._has_model(service, type_name):
            return [service]
        return super().list_available_services(type_name)

    def _has_model(self, service: str, type_name: str) -> bool:
        for path in self.search_paths:  # Loader._potential_locations, as list_available_services walks them
            directory = os.path.join(path, service)
            if os.path.isdir(path) and os.path.isdir(directory):
                for api_version in os.listdir(directory):
                    if self.file_loader.exists(os.path.join(directory, api_version, type_name)):
                        return True
        return False


def _botocore_session():
    """botocore's default session, with ServiceLoader as its data loader (made as botocore's create_loader makes it)."""
    core = botocore.session.get_session()

    def data_loader() -> ServiceLoader:
        data_path = core.get_config_variable("data_path")
        if data_path is None:
            return ServiceLoader()
        paths = [os.path.expanduser(os.path.expandvars(path)) for path in data_path.split(os.pathsep)]
        return ServiceLoader(extra_search_paths=paths)

    core.lazy_register_component("data_loader", data_loader)
    return core


def aws_session(module):
    params = module.params
    if params.get("aws_ca_bundle") and not os.path.isfile(params["aws_ca_bundle"]):
        module.fail_json(
            msg=f"aws_ca_bundle {params['aws_ca_bundle']} is not a file: give a PEM bundle of CA certificates."
        )
    try:
        return boto3.session.Session(
            botocore_session=_botocore_session(),
            aws_access_key_id=params.get("access_key"),
            aws_secret_access_key=params.get("secret_key"),
            aws_session_token=params.get("session_token"),
            profile_name=params.get("profile"),
            region_name=params.get("region"),
        )
    except botocore.exceptions.ProfileNotFound as exc:
        module.fail_json(msg=f"{exc}: define it in ~/.aws/config or unset profile/AWS_PROFILE.")


# The options a boto3 session is made of: a module's clients share a session while these stay the same
# (aws_access_check changes the region for the cost tables).
SESSION_OPTIONS = ("access_key", "secret_key", "session_token", "profile", "region")


def _shared_session(module):
    sessions = module.__dict__.setdefault("_panzoto_aws_sessions", {})
    options = tuple(module.params.get(name) for name in SESSION_OPTIONS)
    if options not in sessions:
        sessions[options] = aws_session(module)
    return sessions[options]


def aws_client(module, service: str, max_pool_connections: int = 10, parameter_validation: bool = True):
    """A boto3 client for `service`, retrying throttling and 5xx with backoff.

    Fails the module with one line when no region or no credentials are
    available, before any request is made. A module's clients of the same
    connection options share a session, so a second client reuses the service
    models the first loaded.
    parameter_validation=False (botocore's own setting) is for requests the
    module builds from what AWS returned: the endpoint validates them anyway.
    """
    session = _shared_session(module)
    if not session.region_name:
        module.fail_json(msg="No AWS region: set the region option or AWS_REGION.")
    if session.get_credentials() is None:
        module.fail_json(msg="No AWS credentials found: set access_key/secret_key, a profile, or AWS_ACCESS_KEY_ID.")
    params = module.params
    config = Config(
        retries={"mode": "standard", "max_attempts": params.get("max_attempts") or 5},
        max_pool_connections=max_pool_connections,
        connect_timeout=5,
        read_timeout=60,  # botocore's default; a 1 MB Scan page can take long on a busy table
        parameter_validation=parameter_validation,
    )
    if params.get("aws_config"):
        # The user's botocore settings win over the defaults above (as amazon.aws merges them).
        try:
            config = config.merge(Config(**params["aws_config"]))
        except TypeError as exc:
            module.fail_json(msg=f"aws_config: {exc} (see botocore.config.Config for the accepted keys).")
    verify = params.get("validate_certs", True)
    if verify and params.get("aws_ca_bundle"):
        verify = params["aws_ca_bundle"]
    client = session.client(service, endpoint_url=params.get("endpoint_url"), config=config, verify=verify)
    if params.get("debug_botocore_endpoint_logs"):
        _resource_actions(module).attach(client)
    return client


class ResourceActions:
    """The distinct "service:Operation" calls a module made (result resource_actions, debug_botocore_endpoint_logs)."""

    def __init__(self) -> None:
        self.actions: set[str] = set()

    def attach(self, client) -> None:
        prefix = client.meta.service_model.endpoint_prefix
        client.meta.events.register(
            "before-call", lambda model=None, **kwargs: self.actions.add(f"{prefix}:{model.name}")
        )


def _resource_actions(module) -> ResourceActions:
    if not hasattr(module, "_panzoto_resource_actions"):
        module._panzoto_resource_actions = ResourceActions()
    return module._panzoto_resource_actions


def resource_actions(module) -> dict:
    """{"resource_actions": [...]} when debug_botocore_endpoint_logs is on, else {}: to add to a module's result."""
    if not module.params.get("debug_botocore_endpoint_logs"):
        return {}
    return {"resource_actions": sorted(_resource_actions(module).actions)}


# "The thing named does not exist", as each API says it: DynamoDB's
# ResourceNotFoundException, S3's NoSuchKey/NoSuchBucket, and the bare 404 of
# HEAD requests (HeadObject, HeadBucket), which carry no error body.
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NoSuchKey", "NoSuchBucket", "NotFound", "404"})
# What to do about an error, by code; anything else may be transient.
_HINTS = {
    "ResourceNotFoundException": "the table does not exist: check the table name and region",
    "NoSuchBucket": "the bucket does not exist: check the bucket name and region",
    "NoSuchKey": "the object does not exist",
    "NotFound": "it does not exist: check the name and region",
    "404": "it does not exist: check the name and region",
    "AccessDeniedException": "grant the IAM permission named above",
    "AccessDenied": "grant the IAM permission named above",
    "UnrecognizedClientException": "check the credentials",
    "InvalidClientTokenId": "check the credentials",
    "ExpiredTokenException": "refresh the session token",
}


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ("" for any other exception)."""
    if HAS_BOTO3 and isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code", "")
    return ""


def is_error_code(exc: BaseException, codes) -> bool:
    """Whether `exc` is a ClientError with one of `codes` (a str or iterable); amazon.aws's is_boto3_error_code."""
    wanted = {codes} if isinstance(codes, str) else set(codes)
    code = error_code(exc)
    return bool(code) and code in wanted


def is_not_found(exc: BaseException) -> bool:
    return is_error_code(exc, NOT_FOUND_CODES)


def error_summary(exc: BaseException) -> str:
    """The error in one line, without advice: the code and AWS's message, or the exception's first line."""
    if HAS_BOTO3 and isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        message = " ".join(str(error.get("Message") or "").split())
        return f"{error.get('Code') or 'AWS error'}: {message}" if message else error.get("Code") or "AWS error"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def describe_aws_error(
    exc: BaseException, doing: str, endpoint_url: str | None = None, region: str | None = None, client=None
) -> str:
    """One line saying what failed, where (region, endpoint), why, and what to do: the only place errors become text.

    Given the client that made the request, its region and endpoint are named even when they came
    from the environment or botocore's defaults (a wrong region is then visible).
    """
    if client is not None:
        region = region or client.meta.region_name
        endpoint_url = endpoint_url or client.meta.endpoint_url
    where = (f" at {endpoint_url}" if endpoint_url else "") + (f" (region {region})" if region else "")
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return (
            f"Cannot reach the AWS endpoint{where} while trying to {doing}: check endpoint_url/region and the network."
        )
    if isinstance(exc, (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError)):
        return f"The AWS endpoint{where} timed out while trying to {doing}: check the network, then re-run."
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return (
            f"No AWS credentials while trying to {doing}: set access_key/secret_key, a profile, or AWS_ACCESS_KEY_ID."
        )
    if isinstance(exc, botocore.exceptions.ClientError):
        code = error_code(exc)
        message = _plain_message(str(exc.response.get("Error", {}).get("Message") or ""))
        hint = _HINTS.get(code, "re-run; if it persists, check the AWS service health")
        return f"{code or 'AWS error'} while trying to {doing}{where}: {message} ({hint})."
    return f"{error_summary(exc)} while trying to {doing}{where}."


def _plain_message(message: str) -> str:
    """An error message on one line; an XML error body botocore left unparsed reduced to its <Message> text."""
    found = re.search(r"<Message>(.*?)</Message>", message, re.DOTALL)
    return " ".join((found.group(1) if found else message).split())


def aws_errors():
    """The exception types that describe_aws_error() turns into one line."""
    return (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
