"""The chart lints, renders and validates offline; its checks refuse what would break a hub."""

from __future__ import annotations

import pytest
import yaml
from kubernetes_validate import ValidationError, validate

from .conftest import (
    CHART,
    DASHBOARDS_GATE_ARGUMENT,
    IMAGE,
    JOBS,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    by_kind,
    deployment_settings,
    helm,
    merge,
    platform_values,
    render,
)

PVC_LAKE = {"lake": {"volume": {"type": "pvc", "existingClaim": "lake"}}}
S3_LAKE = {
    "lake": {
        "url": "s3://lake/eosc",
        "s3": {
            "enabled": True,
            "existingSecret": "lake-s3",
            "endpointUrl": "https://s3.example.org",
        },
    }
}
NFS = {"server": "nfs.example.org", "path": "/lake"}
NFS_LAKE = {"lake": {"volume": {"type": "nfs", "nfs": NFS}}}
WITHOUT_DEPENDENCIES = {"jupyterhub": {"enabled": False}, "dask-gateway": {"enabled": False}}


def test_the_chart_lints_cleanly_with_its_dependencies_in_place(chart_with_stand_ins):
    report = helm.lint(chart_with_stand_ins, platform_values(**PVC_LAKE), strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_the_dependencies_are_pinned_and_switched_by_their_enabled_values():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    dependencies = {d["name"]: d for d in chart["dependencies"]}
    assert set(dependencies) == {"jupyterhub", "dask-gateway"}
    for name, dependency in dependencies.items():
        assert dependency["version"][0].isdigit() and not set("^~*<>x") & set(
            dependency["version"]
        ), f"{name} is not pinned to one version"
        assert dependency["condition"] == f"{name}.enabled"


def test_our_templates_render_with_the_dependencies_disabled():
    kinds = {m["kind"] for m in render(platform_values(**WITHOUT_DEPENDENCIES, **PVC_LAKE))}
    assert {"ConfigMap", "Deployment", "Service", "CronJob", "NetworkPolicy"} <= kinds


@pytest.mark.parametrize(
    ("jupyterhub", "gateway"), [(True, True), (True, False), (False, True), (False, False)]
)
def test_each_subchart_renders_exactly_when_it_is_enabled(
    chart_with_stand_ins, jupyterhub, gateway
):
    values = platform_values(
        jupyterhub={"enabled": jupyterhub}, **{"dask-gateway": {"enabled": gateway}}
    )
    configmaps = by_kind(render(values, chart_with_stand_ins), "ConfigMap")
    assert ("stand-in-jupyterhub" in configmaps) == jupyterhub
    assert ("stand-in-dask-gateway" in configmaps) == gateway
    assert ("gateway" in deployment_settings(configmaps.values())) == gateway


def test_the_subcharts_get_the_wiring_of_a_daskhub(chart_with_stand_ins):
    configmaps = by_kind(render(platform_values(), chart_with_stand_ins), "ConfigMap")
    hub = yaml.safe_load(configmaps["stand-in-jupyterhub"]["data"]["values.json"])
    gateway = yaml.safe_load(configmaps["stand-in-dask-gateway"]["data"]["values.json"])
    # The gateway is a hub service, authenticated by the hub, with the token z2jh makes for it.
    assert "dask-gateway" in hub["hub"]["services"]
    auth = gateway["gateway"]["auth"]
    assert auth["type"] == "jupyterhub"
    assert auth["jupyterhub"]["jupyterhubServiceName"] == "dask-gateway"
    assert auth["jupyterhub"]["apiTokenFromSecretKey"] == "hub.services.dask-gateway.apiToken"
    assert gateway["gateway"]["prefix"] == "/services/dask-gateway"
    # Both configure themselves from our Python code, reading the deployment settings.
    assert "configure_hub(c)" in "".join(hub["hub"]["extraConfig"].values())
    assert "configure_gateway(c)" in "".join(gateway["gateway"]["extraConfig"].values())
    for env in (hub["hub"]["extraEnv"]["EOSC_PANGEO_DEPLOYMENT"], gateway["gateway"]["env"][0]):
        assert env["valueFrom"]["configMapKeyRef"] == {
            "name": "eosc-pangeo-deployment",
            "key": "deployment.json",
        }
    assert hub["cull"]["enabled"] is True
    assert gateway["traefik"]["service"]["type"] == "ClusterIP"


def test_the_deployment_settings_carry_the_image_the_gateway_and_the_limits():
    values = platform_values(**S3_LAKE, dask={"limits": {"groups": {"staff": {"maxClusters": 5}}}})
    settings = deployment_settings(render(values))
    assert settings["image"] == f"{IMAGE['name']}:{IMAGE['tag']}"
    assert settings["gateway"]["url"] == "http://traefik-pangeo-dask-gateway.pangeo:80"
    assert settings["gateway"]["schedulerAddress"] == "traefik-pangeo-dask-gateway.pangeo:80"
    assert settings["gateway"]["groupLimits"] == {"staff": {"maxClusters": 5}}
    assert settings["lake"]["s3"]["secretName"] == "lake-s3"


@pytest.mark.parametrize("tag", ["latest", ""])
def test_a_moving_or_missing_image_tag_is_refused(tag):
    with pytest.raises(helm.HelmError, match="tag"):
        render(platform_values(image={"tag": tag}))


@pytest.mark.parametrize(
    "subchart_image",
    [
        {"jupyterhub": {"singleuser": {"image": {"tag": "0.0.9"}}}},
        {"dask-gateway": {"gateway": {"backend": {"image": {"name": "ghcr.io/dask/gateway"}}}}},
    ],
)
def test_a_subchart_image_other_than_the_platform_image_is_refused_with_the_value_to_fix(
    subchart_image,
):
    with pytest.raises(helm.HelmError, match=r"must|set .*\.name and \.tag"):
        render(merge(platform_values(), subchart_image))


def test_clusters_that_forbid_crds_must_disable_the_gateway_and_then_render():
    with pytest.raises(helm.HelmError, match="CRD"):
        render(platform_values(dask={"crdsAllowed": False}))
    values = platform_values(dask={"crdsAllowed": False}, **{"dask-gateway": {"enabled": False}})
    manifests = render(values)
    assert "gateway" not in deployment_settings(manifests)
    assert not [m for m in manifests if "dask" in m["metadata"]["name"]]
    # Nor any object of a CRD: the dashboards' ForwardAuth goes with the gateway's traefik.
    assert {m["apiVersion"].split("/")[0] for m in manifests} <= {"v1", "apps", "batch"} | {
        "networking.k8s.io"
    }


def test_the_gateways_proxy_asks_the_dashboards_gate_about_every_request():
    from eosc_pangeo.platform.dashboards import FORWARD_AUTH_PATH, GATE_HEADER, SERVICE_PREFIX
    from eosc_pangeo.platform.kube import Gateway

    middleware = by_kind(render(platform_values()), "Middleware")["eosc-pangeo-dashboards"]
    assert middleware["apiVersion"] == "traefik.io/v1alpha1"
    # dask-gateway's traefik reads only the CRDs labelled with its instance.
    assert middleware["metadata"]["labels"]["gateway.dask.org/instance"] == "pangeo-dask-gateway"
    forward_auth = middleware["spec"]["forwardAuth"]
    gate_port = Gateway.model_fields["gate_port"].default
    assert forward_auth["address"] == (
        f"http://hub.{NAMESPACE}:{gate_port}{SERVICE_PREFIX}{FORWARD_AUTH_PATH}"
    )
    assert set(forward_auth["authResponseHeaders"]) == {"Authorization", "Cookie", GATE_HEADER}
    assert "trustForwardHeader" not in forward_auth  # the URI checked is traefik's own


def test_without_traefiks_gate_argument_the_chart_refuses_naming_it():
    values = merge(
        platform_values(), {"dask-gateway": {"traefik": {"additionalArguments": ["--log=x"]}}}
    )
    with pytest.raises(helm.HelmError, match=DASHBOARDS_GATE_ARGUMENT):
        render(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lake": {"volume": {"type": "pvc"}}}, "existingClaim"),
        ({"lake": {"s3": {"enabled": True}}}, "existingSecret"),
        ({"lake": {"volume": {"type": "ceph"}}}, "type"),
        ({"lake": {"volume": {"claim": "lake"}}}, "claim"),
        ({"auth": {"oidc": {"enabled": True}}}, "issuerUrl"),
        ({"dask": {"limits": {"default": {"maxClusters": 0}}}}, "maxClusters"),
        ({"profiles": [{"slug": "Big One", "displayName": "big"}]}, "slug"),
    ],
)
def test_bad_values_are_refused_naming_the_value(values, message):
    with pytest.raises(helm.HelmError, match=message):
        render(merge(platform_values(), values))


def test_oidc_needs_its_client_secret_mounted_in_the_hub():
    oidc = {
        "enabled": True,
        "issuerUrl": "https://aai.egi.eu/auth/realms/egi",
        "clientId": "pangeo",
        "callbackUrl": "https://hub.example.org/hub/oauth_callback",
        "clientSecret": {"existingSecret": "oidc"},
    }
    with pytest.raises(helm.HelmError, match="extraVolumes"):
        render(platform_values(auth={"oidc": oidc}))


def test_the_egi_checkin_example_renders(chart_with_stand_ins):
    example = yaml.safe_load((CHART / "examples" / "egi-checkin.yaml").read_text())
    settings = deployment_settings(render(example, chart_with_stand_ins))
    assert settings["oidc"]["issuerUrl"] == "https://aai.egi.eu/auth/realms/egi"
    assert settings["oidc"]["groupsClaim"] == "eduperson_entitlement"
    gpu = next(p for p in settings["profiles"] if p["slug"] == "gpu")
    assert gpu["groups"] and all(g.startswith("urn:mace:egi.eu:group:") for g in gpu["groups"])


CASES = {
    "pvc lake": PVC_LAKE,
    "s3 lake": S3_LAKE,
    "nfs lake": NFS_LAKE,
    "without gateway": {"dask-gateway": {"enabled": False}, **PVC_LAKE},
    "writable root": {"security": {"readOnlyRootFilesystem": False}},
    "jobs service": {**JOBS, **PVC_LAKE},
}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_every_rendered_manifest_is_valid_for_each_supported_kubernetes(case, version):
    for manifest in render(platform_values(**CASES[case])):
        if manifest["apiVersion"].startswith("traefik.io/"):
            continue  # a CRD's kind, unknown to kubernetes-validate: see the middleware's test
        try:
            validate(manifest, version, strict=True)
        except ValidationError as error:
            pytest.fail(f"{manifest['kind']} {manifest['metadata']['name']}: {error}")


def test_our_pods_are_hardened_and_bounded():
    manifests = render(platform_values(**PVC_LAKE))
    pods = [d["spec"]["template"]["spec"] for d in by_kind(manifests, "Deployment").values()]
    pods += [
        c["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        for c in by_kind(manifests, "CronJob").values()
    ]
    assert pods
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            assert container["image"] == f"{IMAGE['name']}:{IMAGE['tag']}"
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert {"requests", "limits"} <= set(container["resources"])


def test_the_lake_is_read_only_except_in_the_cronjob_that_rebuilds_the_catalogue():
    manifests = render(platform_values(**PVC_LAKE))
    catalog = by_kind(manifests, "Deployment")["eosc-pangeo-catalog"]["spec"]["template"]["spec"]
    cron = by_kind(manifests, "CronJob")["eosc-pangeo-catalog-build"]
    job = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    lake = {"persistentVolumeClaim": {"claimName": "lake"}}
    for pod, read_only in ((catalog, True), (job, False)):
        assert {"name": "eosc-pangeo-lake", **lake} in pod["volumes"]
        mounts = pod["containers"][0]["volumeMounts"]
        mount = next(m for m in mounts if m["name"] == "eosc-pangeo-lake")
        assert (mount["mountPath"], mount["readOnly"]) == ("/lake", read_only)
    assert job["containers"][0]["args"] == [
        "eosc-pangeo",
        "catalog",
        "build",
        "--lake",
        "$(EOSC_PANGEO_LAKE)",
    ]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"


def test_s3_credentials_come_from_the_secret_into_the_chart_pods():
    manifests = render(platform_values(**S3_LAKE))
    container = by_kind(manifests, "Deployment")["eosc-pangeo-catalog"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    secret_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert secret_refs["AWS_ACCESS_KEY_ID"] == {"name": "lake-s3", "key": "AWS_ACCESS_KEY_ID"}
    lake = by_kind(manifests, "ConfigMap")["eosc-pangeo-lake"]["data"]
    assert lake["EOSC_PANGEO_LAKE"] == "s3://lake/eosc"
    assert lake["AWS_ENDPOINT_URL_S3"] == "https://s3.example.org"


def test_the_charts_pods_are_hardened_as_the_python_side_hardens_notebooks_and_workers():
    """The templates repeat kube.py's security contexts (templates cannot call Python)."""
    from eosc_pangeo.platform.kube import container_security_context, pod_security_context

    manifests = render(platform_values())
    pod = by_kind(manifests, "Deployment")["eosc-pangeo-catalog"]["spec"]["template"]["spec"]
    assert pod["securityContext"] == pod_security_context()
    assert pod["containers"][0]["securityContext"] == container_security_context(True)
