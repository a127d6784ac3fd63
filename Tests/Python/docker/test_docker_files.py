"""What can be validated of the Docker files without a Docker engine."""
import os
import re
import socket
import subprocess

import pytest
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


# The two-account variants: a config file of one V1 and one V2 account, every
# secret a mounted file. Without a Docker engine or a cluster, what can be
# checked is the files themselves, and that the real binary accepts the
# config file with the environment the container would have.

ACCOUNT_FILE_KEYS = ("api_key_file", "api_secret_file", "client_token_file", "upstream_ca_file")
SECRET_KEYS = ("api_key", "api_secret", "client_token")  # values of these never belong in a file or manifest


def proxy_binary():
    """The newest build of the binary (make test builds debug, then release)."""
    built = [p for p in (RELEASE, os.path.join(ROOT, ".build", "debug", "iamport-proxy")) if os.path.exists(p)]
    if not built:
        pytest.skip("iamport-proxy is not built")
    return max(built, key=os.path.getmtime)


def image_environment():
    """The ENV of the runtime image: what a container starts with."""
    runtime_stage = dockerfile().split("FROM ${RUNTIME_IMAGE}")[1]
    env = {}
    for block in re.findall(r"^ENV ((?:.*\\\n)*.*)$", runtime_stage, re.M):
        for pair in block.replace("\\\n", " ").split():
            name, value = pair.split("=", 1)
            env[name] = value
    return env


def account_files(config):
    return [(account["name"], key, account[key]) for account in config["accounts"] for key in ACCOUNT_FILE_KEYS if key in account]


def closed_loopback_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_with_the_binary(config_text, container_env, mounts, tmp_path):
    """Runs `iamport-proxy check` on the config file as the container would:
    its environment, its mounted directories recreated under tmp_path with
    placeholder secrets, and (so that nothing leaves the machine) each
    account's upstream set to a closed port on 127.0.0.1. The check itself
    then fails (exit 1, nothing to reach), but only after the whole
    configuration was read and accepted; a configuration error exits 2."""
    port = closed_loopback_port()

    def local(path):
        for mount in sorted(mounts, key=len, reverse=True):
            if path == mount or path.startswith(mount.rstrip("/") + "/"):
                return str(tmp_path) + path
        raise AssertionError(f"{path} is on no mounted volume {sorted(mounts)}")

    config = yaml.safe_load(config_text)
    for name, key, path in account_files(config):
        os.makedirs(os.path.dirname(local(path)), exist_ok=True)
        with open(local(path), "w") as f:
            f.write(f"placeholder-{name}-{key}\n")
    text = config_text
    for _, _, path in account_files(config):
        text = text.replace(path, local(path))
    # An upstream line beside each account's api line, indented alike.
    assert "upstream:" not in text, "the example accounts use their api's default upstream"
    text = re.sub(r"^(\s*)api: (v1|v2)$", rf"\1api: \2\n\1upstream: http://127.0.0.1:{port}", text, flags=re.M)
    config_path = local(container_env["IAMPORT_PROXY_CONFIG"])
    os.makedirs(os.path.dirname(config_path), exist_ok=True)
    with open(config_path, "w") as f:
        f.write(text)
    env = dict(container_env, IAMPORT_PROXY_CONFIG=config_path, IAMPORT_PROXY_UPSTREAM_TIMEOUT="2",
               PATH=os.environ.get("PATH", "/usr/bin:/bin"))
    result = subprocess.run([proxy_binary(), "check"], env=env, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert "configuration error" not in output, output
    assert result.returncode == 1, output
    for account in config["accounts"]:
        assert f"account {account['name']}:" in result.stdout, output
    return output


def assert_no_secret_values(config):
    for account in config["accounts"]:
        for key in SECRET_KEYS:
            assert key not in account, f"{account['name']}: {key} written in the config file; use {key}_file"
        assert "client_token_file" in account, f"{account['name']}: every account has a client token file of its own"
        for key, value in account.items():
            if key.endswith("_env"):
                raise AssertionError(f"{account['name']}: {key}: the variants take every secret from a file")
    tokens = [account["client_token_file"] for account in config["accounts"]]
    assert len(set(tokens)) == len(tokens)
    assert sorted(account["api"] for account in config["accounts"]) == ["v1", "v2"]


def assert_no_secret_in_environment(env):
    for name, value in env.items():
        if any(word in name for word in ("SECRET", "TOKEN", "KEY")) and not name.endswith("_FILE"):
            raise AssertionError(f"{name} holds a value; secrets are files")
        if name.endswith("_FILE") and value:
            assert value.startswith("/run/secrets/"), f"{name}={value}"


def test_compose_two_accounts(tmp_path):
    with open(os.path.join(DOCKER, "docker-compose.accounts.yml")) as f:
        compose = yaml.safe_load(f)
    services = compose["services"]
    assert set(services) == {"iamport-proxy", "app"}
    proxy = services["iamport-proxy"]
    assert "ports" not in proxy, "the proxy's port must not be published"
    assert proxy["healthcheck"]["test"][-1] == "healthcheck"
    assert proxy["read_only"] is True and proxy["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in proxy["security_opt"]
    assert compose["networks"]["backend"]["internal"] is True
    assert services["app"]["networks"] == ["backend"]
    assert services["app"]["depends_on"]["iamport-proxy"]["condition"] == "service_healthy"

    env = proxy["environment"]
    assert_no_secret_in_environment(env)
    assert_no_secret_in_environment(services["app"]["environment"])
    # The image's single-account defaults would conflict with the config file.
    for name, value in image_environment().items():
        if name.startswith("IAMPORT_API_"):
            assert env.get(name) == "", f"{name} from the image must be cleared"

    # The config file the container reads is the compose config mounted there.
    [mounted] = [c for c in proxy["configs"] if c["target"] == env["IAMPORT_PROXY_CONFIG"]]
    config_file = os.path.join(DOCKER, compose["configs"][mounted["source"]]["file"])
    with open(config_file) as f:
        config_text = f.read()
    config = yaml.safe_load(config_text)
    assert_no_secret_values(config)

    # Every file the config names is one of the proxy's secrets, and each is used.
    secrets = set(proxy["secrets"])
    named = set()
    for name, key, path in account_files(config):
        assert os.path.dirname(path) == "/run/secrets", f"{name}: {key}: {path} is not a Docker secret"
        assert os.path.basename(path) in secrets, f"{name}: {key}: {path} is not mounted"
        named.add(os.path.basename(path))
    assert named == secrets
    for secret in compose["secrets"].values():
        assert set(secret) == {"file"} and secret["file"].startswith("./secrets/"), "secrets come from git-ignored files"
    # The app holds the client tokens, nothing else.
    tokens = {os.path.basename(a["client_token_file"]) for a in config["accounts"]}
    assert set(services["app"]["secrets"]) == tokens

    container_env = dict(image_environment(), **env)
    check_with_the_binary(config_text, container_env, ["/run/secrets", os.path.dirname(env["IAMPORT_PROXY_CONFIG"])], tmp_path)


def test_kubernetes_two_accounts(tmp_path):
    with open(os.path.join(DOCKER, "kubernetes", "sidecar-accounts.yaml")) as f:
        documents = list(yaml.safe_load_all(f))
    kinds = {d["kind"]: d for d in documents}
    assert set(kinds) == {"ConfigMap", "Deployment"}, "no Secret in the manifest: secrets are created apart"
    spec = kinds["Deployment"]["spec"]["template"]["spec"]
    sidecar = spec["initContainers"][0]
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["readinessProbe"]["exec"]["command"][-1] == "healthcheck"
    assert sidecar["startupProbe"]["exec"]["command"][-1] == "healthcheck"
    security = sidecar["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["runAsNonRoot"] is True
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
    assert sidecar["resources"]["limits"]["memory"]
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert_no_secret_in_environment(env)
    assert env["IAMPORT_PROXY_LISTEN"].startswith("127.0.0.1:"), "the image's 0.0.0.0 would win over the file"
    for name in image_environment():
        if name.startswith("IAMPORT_API_"):
            assert env.get(name) == "", f"{name} from the image must be cleared"

    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in sidecar["volumeMounts"]}
    for mount in sidecar["volumeMounts"]:
        assert "subPath" not in mount, "a subPath mount never sees an update, so no reload"
        assert mount["readOnly"] is True

    # The config file the sidecar reads is the ConfigMap's, mounted there.
    config_dir, config_name = os.path.split(env["IAMPORT_PROXY_CONFIG"])
    config_map = kinds["ConfigMap"]
    assert mounts[config_dir]["configMap"]["name"] == config_map["metadata"]["name"]
    config_text = config_map["data"][config_name]
    config = yaml.safe_load(config_text)
    assert_no_secret_values(config)

    # Every file the config names is an item of a Secret volume mounted there.
    for name, key, path in account_files(config):
        directory, item = os.path.split(path)
        assert directory in mounts, f"{name}: {key}: {path} is not mounted"
        secret = mounts[directory]["secret"]
        assert item in [i["path"] for i in secret["items"]], f"{name}: {key}: {item} is not in {secret['secretName']}"
    # One listener of each kind: the V2 account on its own.
    [v2] = [a for a in config["accounts"] if a["api"] == "v2"]
    assert v2["listen"].startswith("127.0.0.1:") and v2["listen"] != env["IAMPORT_PROXY_LISTEN"]
    # The app mounts the client tokens only.
    app = spec["containers"][0]
    for mount in app["volumeMounts"]:
        assert [i["key"] for i in volumes[mount["name"]]["secret"]["items"]] == ["client_token"]

    container_env = dict(image_environment(), **env)
    check_with_the_binary(config_text, container_env, list(mounts), tmp_path)
