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
