"""What can be validated of the Docker files without a Docker engine."""
import os
import re
import subprocess

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DOCKER = os.path.join(ROOT, "Docker")
RELEASE = os.path.join(ROOT, ".build", "release", "iamport-proxy")
BASE_IMAGE_PACKAGES = {"libc6"}  # in every Debian image


def dockerfile():
    with open(os.path.join(DOCKER, "Dockerfile")) as f:
        return f.read()


def runtime_packages():
    runtime_stage = dockerfile().split("FROM ${RUNTIME_IMAGE}")[1]
    install = re.search(r"apt-get install -y --no-install-recommends ([^\\&]+)", runtime_stage)
    return set(install.group(1).split())


def test_runtime_packages_match_what_the_release_binary_needs():
    assert "--static-swift-stdlib" in dockerfile()
    needed = subprocess.run(["readelf", "-d", RELEASE], capture_output=True, text=True, check=True).stdout
    libraries = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", needed)
    assert "libcurl.so.4" in libraries
    packages = set()
    for library in libraries:
        if library.startswith("ld-linux"):
            continue
        owner = subprocess.run(["dpkg", "-S", f"*/{library}"], capture_output=True, text=True, check=True).stdout
        packages.add(owner.split(":")[0])
    missing = packages - runtime_packages() - BASE_IMAGE_PACKAGES
    assert not missing, f"runtime image lacks {missing} (binary needs {sorted(libraries)})"
    assert "ca-certificates" in runtime_packages(), "TLS to the API needs the trust store"
    assert "libcurl4" in runtime_packages(), "the OpenSSL flavour of libcurl"


def test_runtime_image_runs_as_non_root_with_a_healthcheck():
    text = dockerfile().split("FROM ${RUNTIME_IMAGE}")[1]
    assert re.search(r"^USER 10001", text, re.M)
    assert 'HEALTHCHECK' in text and '"healthcheck"' in text
    assert "IAMPORT_API_SECRET_FILE=/run/secrets/" in text
    assert "IAMPORT_API_SECRET=" not in text.replace("IAMPORT_API_SECRET_FILE", "")


def test_compose_file_has_the_sidecar_and_its_app():
    with open(os.path.join(DOCKER, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    services = compose["services"]
    assert set(services) == {"iamport-proxy", "app"}
    proxy = services["iamport-proxy"]
    assert "ports" not in proxy, "the proxy's port must not be published"
    assert proxy["healthcheck"]["test"][-1] == "healthcheck"
    assert set(proxy["secrets"]) == {"iamport_api_key", "iamport_api_secret", "iamport_client_token"}
    env = proxy["environment"]
    assert env["IAMPORT_API_SECRET_FILE"].startswith("/run/secrets/")
    assert "IAMPORT_API_SECRET" not in env
    assert env["IAMPORT_PROXY_LISTEN"].startswith("0.0.0.0:")
    assert compose["networks"]["backend"]["internal"] is True
    assert services["app"]["networks"] == ["backend"]
    assert services["app"]["depends_on"]["iamport-proxy"]["condition"] == "service_healthy"
    assert services["app"]["environment"]["IAMPORT_BASE_URL"] == "http://iamport-proxy:8080/"
    assert "iamport_api_secret" not in services["app"]["secrets"]


def test_kubernetes_sidecar():
    with open(os.path.join(DOCKER, "kubernetes", "sidecar.yaml")) as f:
        deployment = yaml.safe_load(f)
    spec = deployment["spec"]["template"]["spec"]
    sidecar = spec["initContainers"][0]
    assert sidecar["restartPolicy"] == "Always"
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["IAMPORT_PROXY_LISTEN"].startswith("127.0.0.1:")
    assert env["IAMPORT_API_SECRET_FILE"].startswith("/run/secrets/")
    assert sidecar["readinessProbe"]["exec"]["command"][-1] == "healthcheck"
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["containers"][0]["env"][0]["value"] == "http://127.0.0.1:8080/"


def test_runtime_image_has_the_crash_backtracer_next_to_the_binary():
    # A binary built with --static-swift-stdlib looks for `swift-backtrace` in its own directory.
    build_stage = dockerfile().split("FROM ${RUNTIME_IMAGE}")[0]
    assert "/libexec/swift/linux/swift-backtrace-static\" /out/swift-backtrace" in build_stage
    runtime_stage = dockerfile().split("FROM ${RUNTIME_IMAGE}")[1]
    assert re.search(r"^COPY --from=build /out/iamport-proxy /out/swift-backtrace /usr/local/bin/$", runtime_stage, re.M)
    assert 'ENTRYPOINT ["/usr/local/bin/iamport-proxy"]' in runtime_stage
    assert "SWIFT_BACKTRACE" not in dockerfile(), "the binary sets safe settings itself"
