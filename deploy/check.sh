#!/usr/bin/env bash
# Checks everything under deploy/. Run from the repository root, after the build:
#
#   source .ci/setup.sh && bash deploy/check.sh [WARDEN_BINARY]
#
# Needs: $WARDEN_VENV (a Python venv with pyyaml, from .ci/setup.sh), promtool and
# prometheus on PATH (Debian's `prometheus` package), and the warden binary
# (WARDEN_BINARY, $WARDEN_BIN, or $CARGO_TARGET_DIR/{release,debug}/warden).
# Installs kubernetes-validate (pinned) into $WARDEN_VENV for the offline schema check.
# Every step fails the script; optional tools that are missing are skipped, with a message.
set -euo pipefail

KUBERNETES_VALIDATE_VERSION=1.33.1   # bundles the Kubernetes JSON schemas: validates offline
K8S_VERSION=1.33.0

cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -d deploy ] && [ -f Cargo.toml ] || { echo "check.sh: run from the warden repository" >&2; exit 2; }

current_step=""
step() { current_step="$*"; printf '\n== %s\n' "$*"; }
skip() { printf '   SKIPPED: %s\n' "$*"; }
ok() { printf '   ok%s\n' "${1:+: $1}"; }
trap 'rc=$?; if [ $rc -ne 0 ]; then printf "\ncheck.sh: FAILED at step: %s (exit %s)\n" "$current_step" "$rc" >&2; fi' EXIT

step "tools: WARDEN_VENV python with pyyaml, promtool, prometheus, warden binary"
: "${WARDEN_VENV:?WARDEN_VENV is not set: source .ci/setup.sh first}"
PY="$WARDEN_VENV/bin/python"
[ -x "$PY" ] || { echo "   no python at $PY" >&2; exit 1; }
"$PY" -c 'import yaml' || { echo "   pyyaml missing from $WARDEN_VENV" >&2; exit 1; }
command -v promtool >/dev/null || { echo "   promtool not on PATH" >&2; exit 1; }
command -v prometheus >/dev/null || { echo "   prometheus not on PATH" >&2; exit 1; }
WARDEN_BIN=${1:-${WARDEN_BIN:-}}
if [ -z "$WARDEN_BIN" ]; then
  target=${CARGO_TARGET_DIR:-target}
  for kind in release debug; do
    if [ -x "$target/$kind/warden" ]; then WARDEN_BIN="$target/$kind/warden"; break; fi
  done
fi
[ -n "$WARDEN_BIN" ] && [ -x "$WARDEN_BIN" ] || {
  echo "   no warden binary (pass it, set WARDEN_BIN, or build into \$CARGO_TARGET_DIR)" >&2; exit 1; }
ok "$(promtool --version 2>&1 | head -n1); warden: $WARDEN_BIN"

step "parse every YAML file under deploy/ (all documents) and every JSON file"
"$PY" - <<'EOF'
import json, pathlib, sys, yaml
bad = 0
files = sorted(p for p in pathlib.Path("deploy").rglob("*") if p.suffix in (".yml", ".yaml", ".json") and p.is_file())
for p in files:
    try:
        if p.suffix == ".json":
            json.loads(p.read_text())
            what = "json"
        else:
            docs = [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
            if not docs:
                raise ValueError("no YAML document")
            if not all(isinstance(d, dict) for d in docs):
                raise ValueError("a document is not a mapping")
            what = f"{len(docs)} yaml doc(s)"
        print(f"   {p}: {what}")
    except Exception as e:  # noqa: BLE001 - report every broken file
        bad += 1
        print(f"   BROKEN {p}: {e}", file=sys.stderr)
if not files:
    sys.exit("   no YAML/JSON files under deploy/")
sys.exit(1 if bad else 0)
EOF
ok

step "promtool check rules deploy/prometheus/warden-rules.yml"
promtool check rules deploy/prometheus/warden-rules.yml
ok

step "promtool test rules deploy/prometheus/tests/*.test.yml (each alert firing and not firing)"
shopt -s nullglob
tests=(deploy/prometheus/tests/*.test.yml)
shopt -u nullglob
[ ${#tests[@]} -gt 0 ] || { echo "   no rule tests" >&2; exit 1; }
promtool test rules "${tests[@]}"
# Every alert must have a firing and a not-firing case, and a runbook section.
"$PY" - "${tests[@]}" <<'EOF'
import pathlib, re, sys, yaml
rules = [r for g in yaml.safe_load(open("deploy/prometheus/warden-rules.yml"))["groups"] for r in g["rules"] if "alert" in r]
fires, silent = set(), set()
for f in sys.argv[1:]:
    for t in yaml.safe_load(open(f)).get("tests", []):
        for c in t.get("alert_rule_test", []):
            (fires if c.get("exp_alerts") else silent).add(c["alertname"])
runbook = pathlib.Path("docs/runbook.md").read_text() if pathlib.Path("docs/runbook.md").exists() else ""
anchors = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+\s+(.*)$", runbook, re.M)}
problems = []
for r in rules:
    a = r["alert"]
    if a not in fires: problems.append(f"{a}: no test shows it firing")
    if a not in silent: problems.append(f"{a}: no test shows it not firing")
    sev = r.get("labels", {}).get("severity")
    if sev not in ("P0", "P1", "P2", "P3"): problems.append(f"{a}: severity {sev!r} is not P0..P3")
    ann = r.get("annotations", {})
    if not ann.get("summary"): problems.append(f"{a}: no summary")
    url = ann.get("runbook_url", "")
    if "#" not in url or not url.split("#")[0].endswith("docs/runbook.md"):
        problems.append(f"{a}: runbook_url {url!r} is not docs/runbook.md#anchor")
    elif url.split("#", 1)[1] not in anchors:
        problems.append(f"{a}: docs/runbook.md has no section for #{url.split('#', 1)[1]}")
for p in problems: print("   " + p, file=sys.stderr)
print(f"   {len(rules)} alerts: each fires and stays silent in a test, has P0..P3, a summary and a runbook section")
sys.exit(1 if problems else 0)
EOF
ok

step "promtool check config deploy/prometheus/prometheus.yml (its rule_files resolve)"
"$PY" - <<'EOF'
import glob, os, sys, yaml
cfg = "deploy/prometheus/prometheus.yml"
doc = yaml.safe_load(open(cfg))
base = os.path.dirname(cfg)
missing = [r for r in doc.get("rule_files", []) if not glob.glob(os.path.join(base, r))]
jobs = [j.get("job_name") for j in doc.get("scrape_configs", [])]
if missing: sys.exit(f"   rule_files do not resolve relative to {cfg}: {missing}")
if "warden" not in jobs: sys.exit(f"   no scrape job named warden (jobs: {jobs})")
print(f"   rule_files resolve: {doc.get('rule_files')}; jobs: {jobs}")
EOF
promtool check config deploy/prometheus/prometheus.yml
ok

step "Grafana dashboards: schema version, datasource uid, every panel has a PromQL target"
"$PY" - <<'EOF'
import json, pathlib, sys
problems = []
dashboards = sorted(pathlib.Path("deploy/grafana/dashboards").glob("*.json"))
if not dashboards: sys.exit("   no dashboards")
for f in dashboards:
    d = json.loads(f.read_text())
    if not 36 <= d.get("schemaVersion", 0) <= 41: problems.append(f"{f}: schemaVersion {d.get('schemaVersion')}")
    if not d.get("uid"): problems.append(f"{f}: no uid")
    panels = [p for p in d.get("panels", []) if p.get("type") != "row"]
    panels += [q for p in d.get("panels", []) if p.get("type") == "row" for q in p.get("panels", [])]
    ids = [p.get("id") for p in d.get("panels", [])]
    if len(ids) != len(set(ids)): problems.append(f"{f}: duplicate panel ids")
    for p in panels:
        t = p.get("title")
        if (p.get("datasource") or {}).get("uid") != "prometheus": problems.append(f"{f} {t!r}: datasource uid is not 'prometheus'")
        targets = p.get("targets") or []
        if not targets or not all(x.get("expr") for x in targets): problems.append(f"{f} {t!r}: a target without expr")
        for x in targets:
            if (x.get("datasource") or {}).get("uid") != "prometheus": problems.append(f"{f} {t!r} {x.get('refId')}: target datasource uid")
    exprs = " ".join(x.get("expr", "") for p in panels for x in p.get("targets", []))
    for need in ["warden_events_total", "warden_verdicts_total", 'mode="shadow"', "warden_decisions_total",
                 "warden_killswitch_total", "warden_alerts_total", "warden_dlq_total", "warden_consumer_lag",
                 "histogram_quantile(0.5, sum by (le) (rate(warden_process_latency_seconds_bucket",
                 "histogram_quantile(0.99, sum by (le) (rate(warden_process_latency_seconds_bucket",
                 "warden_state_keys", "warden_state_bytes", "warden_checkpoint_seconds_bucket", "warden_ready"]:
        if need not in exprs: problems.append(f"{f}: no panel queries {need}")
    print(f"   {f}: {len(panels)} panels, {sum(len(p.get('targets', [])) for p in panels)} targets")
for p in problems: print("   " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
ok

step "Kubernetes manifests against the Kubernetes $K8S_VERSION schemas (kubernetes-validate $KUBERNETES_VALIDATE_VERSION, --strict, offline)"
if ! "$PY" -m pip show kubernetes-validate 2>/dev/null | grep -qx "Version: $KUBERNETES_VALIDATE_VERSION"; then
  "$WARDEN_VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
manifests=()
for f in deploy/k8s/*.yaml deploy/k8s/*.yml; do
  [ -e "$f" ] || continue
  case "$(basename "$f")" in
    servicemonitor.yaml) echo "   skipping $f: ServiceMonitor is a Prometheus Operator CRD, no core schema (YAML-parsed above)";;
    *) manifests+=("$f");;
  esac
done
[ ${#manifests[@]} -gt 0 ] || { echo "   no manifests" >&2; exit 1; }
"$WARDEN_VENV/bin/kubernetes-validate" --strict -k "$K8S_VERSION" "${manifests[@]}"
"$PY" - <<'EOF'
import sys, yaml
kinds = {}
for f in ["configmap", "secret", "statefulset", "service", "pdb", "servicemonitor"]:
    for d in yaml.safe_load_all(open(f"deploy/k8s/{f}.yaml")):
        if d: kinds.setdefault(d["kind"], []).append(d)
need = {"ConfigMap", "Secret", "StatefulSet", "Service", "PodDisruptionBudget", "ServiceMonitor"}
if need - set(kinds): sys.exit(f"   missing kinds: {need - set(kinds)}")
problems = []
for d in kinds.values():
    for x in d:
        if "namespace" in x.get("metadata", {}): problems.append(f"{x['kind']} {x['metadata']['name']}: has a namespace")
sts = kinds["StatefulSet"][0]["spec"]
pod = sts["template"]["spec"]
c = pod["containers"][0]
checks = {
    "volumeClaimTemplate mounted at /var/lib/warden": any(m["mountPath"] == "/var/lib/warden" and m["name"] in [v["metadata"]["name"] for v in sts.get("volumeClaimTemplates", [])] for m in c["volumeMounts"]),
    "liveness /health": c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/health",
    "readiness /ready": c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/ready",
    "port 9464": any(p["containerPort"] == 9464 for p in c["ports"]),
    "env from the Secret": any(e.get("secretRef", {}).get("name") == kinds["Secret"][0]["metadata"]["name"] for e in c.get("envFrom", [])),
    "terminationGracePeriodSeconds >= 60": pod.get("terminationGracePeriodSeconds", 30) >= 60,
    "non-root": pod.get("securityContext", {}).get("runAsNonRoot") is True,
    "read-only root fs": c.get("securityContext", {}).get("readOnlyRootFilesystem") is True,
    "resources": bool(c.get("resources", {}).get("requests")) and bool(c.get("resources", {}).get("limits")),
    "no prometheus.io annotations (the ServiceMonitor scrapes, job=warden)": not any(k.startswith("prometheus.io/") for k in sts["template"]["metadata"].get("annotations", {}) or {}),
    "ServiceMonitor job label is warden": (lambda sm: any(sv["metadata"].get("labels", {}).get(sm["spec"].get("jobLabel", "")) == "warden" and all(sv["metadata"].get("labels", {}).get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()) for sv in kinds["Service"]))(kinds["ServiceMonitor"][0]),
    "headless Service": any(s["spec"].get("clusterIP") == "None" and s["metadata"]["name"] == sts["serviceName"] for s in kinds["Service"]),
    "PDB maxUnavailable 1": kinds["PodDisruptionBudget"][0]["spec"].get("maxUnavailable") == 1,
}
problems += [k for k, v in checks.items() if not v]
for p in problems: print("   missing: " + p, file=sys.stderr)
print(f"   StatefulSet: {', '.join(k for k, v in checks.items() if v)}")
sys.exit(1 if problems else 0)
EOF
ok

step "warden check-config: deploy/warden.toml and the ConfigMap's warden.toml"
tmpd=$(mktemp -d)
"$PY" - "$tmpd/configmap.toml" <<'EOF'
import sys, yaml
d = yaml.safe_load(open("deploy/k8s/configmap.yaml"))
open(sys.argv[1], "w").write(d["data"]["warden.toml"])
EOF
for cfg in deploy/warden.toml "$tmpd/configmap.toml"; do
  if ! out=$("$WARDEN_BIN" check-config --config "$cfg" 2>&1); then
    echo "$out" | tail -n 20 >&2; rm -rf "$tmpd"; echo "   $cfg is not a valid warden config" >&2; exit 1
  fi
  echo "   $cfg: valid ($(echo "$out" | grep -c '^\[rules\.') rules in effect)"
done
rm -rf "$tmpd"
ok

step "systemd-analyze verify deploy/systemd/warden.service (optional)"
if command -v systemd-analyze >/dev/null 2>&1; then
  tmpd=$(mktemp -d)
  # The unit names /usr/local/bin/warden; verify it against the binary we have.
  sed "s#/usr/local/bin/warden#$(realpath "$WARDEN_BIN")#g" deploy/systemd/warden.service > "$tmpd/warden.service"
  if ! out=$(systemd-analyze verify "$tmpd/warden.service" 2>&1) || [ -n "$out" ]; then
    echo "$out" >&2; rm -rf "$tmpd"; exit 1
  fi
  echo "   $(systemd-analyze security --offline=yes "$tmpd/warden.service" 2>/dev/null | tail -n1 || true)"
  rm -rf "$tmpd"
  ok
else
  skip "systemd-analyze is not installed"
fi

step "docker compose config deploy/docker-compose.yml (optional)"
if docker compose version >/dev/null 2>&1; then
  WARDEN_HMAC_KEY=x WARDEN_SIGNING_KEY=x WARDEN_ADMIN_TOKEN=x docker compose -f deploy/docker-compose.yml config -q
  ok
else
  skip "docker compose is not installed (the file was YAML-parsed above)"
fi

step "live PromQL check: warden run (embedded Kafka) + prometheus, every dashboard and rule expression"
timeout 150 python3 deploy/promql_check.py "$WARDEN_BIN"
ok

current_step=""
printf '\ncheck.sh: all deploy checks passed\n'
