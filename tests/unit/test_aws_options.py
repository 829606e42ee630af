"""The AWS connection options are amazon.aws's own, and the one client factory honours them."""

from __future__ import annotations

import pytest
from ansible.module_utils.panzoto.aws import AWS_ARGUMENT_SPEC, aws_client, resource_actions, validate_aws_params


def amazon_aws_spec() -> dict:
    modules = pytest.importorskip("ansible_collections.amazon.aws.plugins.module_utils.modules")
    return modules.aws_argument_spec()


def test_every_amazon_aws_option_is_taken_with_its_aliases_type_default_and_environment():
    theirs = amazon_aws_spec()
    assert set(theirs) <= set(AWS_ARGUMENT_SPEC), set(theirs) - set(AWS_ARGUMENT_SPEC)
    for name, option in theirs.items():
        ours = AWS_ARGUMENT_SPEC[name]
        assert sorted(ours.get("aliases", [])) == sorted(option.get("aliases", [])), name
        assert ours.get("type", "str") == option.get("type", "str"), name
        assert ours.get("default") == option.get("default"), name
        assert bool(ours.get("no_log")) == bool(option.get("no_log")), name
        if "fallback" in option:
            assert set(option["fallback"][1]) <= set(ours["fallback"][1]), name


class Module:
    """Just what the factory reads from an AnsibleModule."""

    def __init__(self, **params) -> None:
        self.params = {name: option.get("default") for name, option in AWS_ARGUMENT_SPEC.items()}
        self.params.update(region="us-east-1", access_key="testing", secret_key="testing", **params)

    def fail_json(self, msg: str, **kwargs):
        raise AssertionError(msg)


def test_the_factory_applies_ca_bundle_validate_certs_and_aws_config(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    client = aws_client(Module(aws_ca_bundle=str(bundle), aws_config={"connect_timeout": 17}), "s3")
    assert client._endpoint.http_session._verify == str(bundle)
    assert client.meta.config.connect_timeout == 17 and client.meta.config.retries["mode"] == "standard"
    unverified = aws_client(Module(validate_certs=False, aws_ca_bundle=str(bundle)), "s3")
    assert unverified._endpoint.http_session._verify is False


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"aws_config": {"no_such_setting": 1}}, "aws_config:"),
        ({"aws_ca_bundle": "/nonexistent/ca.pem"}, "aws_ca_bundle /nonexistent/ca.pem is not a file"),
    ],
)
def test_bad_connection_options_fail_in_one_line(params, message):
    with pytest.raises(AssertionError, match=message) as error:
        aws_client(Module(**params), "s3")
    assert "\n" not in str(error.value)


def test_a_profile_and_explicit_keys_are_refused_as_amazon_aws_does():
    with pytest.raises(AssertionError, match="profile cannot be combined"):
        validate_aws_params(Module(profile="ops"))


def test_resource_actions_are_returned_only_when_asked():
    quiet = Module()
    aws_client(quiet, "dynamodb")
    assert resource_actions(quiet) == {}
    loud = Module(debug_botocore_endpoint_logs=True)
    client = aws_client(loud, "dynamodb", max_pool_connections=2)
    client.meta.events.emit(
        "before-call.dynamodb.Scan", model=client.meta.service_model.operation_model("Scan"), params={}
    )
    assert resource_actions(loud) == {"resource_actions": ["dynamodb:Scan"]}


def test_clients_share_a_session_while_the_connection_options_stay_the_same():
    module = Module()
    first = aws_client(module, "dynamodb")
    aws_client(module, "s3")
    assert len(module._panzoto_aws_sessions) == 1
    module.params["region"] = "eu-west-1"  # as aws_access_check does for the cost tables' region
    other = aws_client(module, "dynamodb")
    assert (first.meta.region_name, other.meta.region_name) == ("us-east-1", "eu-west-1")
    assert len(module._panzoto_aws_sessions) == 2


def test_a_client_can_leave_parameter_validation_to_the_endpoint():
    from botocore.exceptions import ParamValidationError

    module = Module(endpoint_url="http://127.0.0.1:9")
    checked = aws_client(module, "dynamodb")
    unchecked = aws_client(module, "dynamodb", parameter_validation=False)
    operation = checked.meta.service_model.operation_model("DeleteItem")
    request = {"TableName": "jobs", "Key": {"job_id": {"S": "j1"}}}
    # The same request on the wire; only the validation is left out.
    assert unchecked._serializer.serialize_to_request(request, operation) == checked._serializer.serialize_to_request(
        request, operation
    )
    with pytest.raises(ParamValidationError):
        checked._serializer.serialize_to_request({"TableName": "jobs"}, operation)  # no Key
    unchecked._serializer.serialize_to_request({"TableName": "jobs"}, operation)  # left to the endpoint
