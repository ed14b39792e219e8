"""The Kubernetes deployment settings: missing or wrong ones fail when the hub or gateway loads."""

from __future__ import annotations

import pytest
from traitlets.config import Config

from eosc_pangeo.platform.kube import DeploymentError, configure_gateway, load_deployment

SETTINGS = {"image": "registry.example.org/eosc-pangeo:0.1.0"}


def test_missing_settings_say_where_they_come_from(settings_env):
    settings_env(deployment="{}")
    with pytest.raises(DeploymentError, match="eosc-pangeo ConfigMap"):
        load_deployment()


def test_settings_are_read_from_the_environment(settings_env):
    settings_env(deployment='{"image": "registry.example.org/eosc-pangeo:0.1.0"}')
    assert load_deployment().image == "registry.example.org/eosc-pangeo:0.1.0"


@pytest.mark.parametrize("image", ["registry.example.org/eosc-pangeo:latest", "eosc-pangeo"])
def test_an_image_without_a_fixed_tag_is_refused(image):
    with pytest.raises(DeploymentError, match="never latest"):
        load_deployment({"image": image})


def test_an_unknown_setting_is_named():
    with pytest.raises(DeploymentError, match="lakes"):
        load_deployment({**SETTINGS, "lakes": {}})


def test_a_gateway_configuration_needs_the_gateway_settings():
    with pytest.raises(DeploymentError, match="dask-gateway enabled"):
        configure_gateway(Config(), SETTINGS)
