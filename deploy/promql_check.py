#!/usr/bin/env python3
"""Live check of warden's dashboard and alert-rule PromQL against a running warden.

    python3 deploy/promql_check.py [WARDEN_BINARY] [SCENARIO_DIR]

WARDEN_BINARY defaults to $CARGO_TARGET_DIR/release/warden, else
$CARGO_TARGET_DIR/debug/warden. SCENARIO_DIR holds *.jsonl scenario files; without it
they are generated with ../shared/scenarios/gen.py (relative to the repo root).

What it does:
  1. concatenates the scenarios' *.jsonl into one stream ordered by `ts` (lines that do
     not parse, or have no numeric `ts`, go at the end: some are malformed on purpose);
  2. starts Prometheus (1 s scrapes of job "warden", deploy/prometheus/*rules*.yml loaded)
     and then `warden run --http 127.0.0.1:P --state TMP/state --load STREAM` in embedded
     mode (no brokers: an in-process Kafka cluster), so scrapes see the counters grow;
  3. waits for warden's /ready (60 s), then until Prometheus has warden_events_total and a
     few scrapes;
  4. evaluates every `expr` of deploy/grafana/dashboards/*.json (Grafana variables replaced:
     $__rate_interval -> 1m, $__interval -> 15s, $__range -> 5m, template variables -> .*)
     and every rule query Prometheus loaded, through GET /api/v1/query;
  5. fails on any query error, on a rule whose health is "err", and unless the throughput
     (warden_events_total), verdict (warden_verdicts_total) and latency
     (warden_process_latency_seconds) panels return data (a finite value).
Both processes are stopped in a `finally`; the whole run is bounded (~2 minutes).
Standard library only (Python 3.11).
"""

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
DEADLINE = time.monotonic() + 115  # the whole check stops within ~2 minutes
READY_TIMEOUT = 60
SETTLE_MIN = 20  # seconds of scraping after warden is ready
REQUIRED_PANELS = {
    "throughput": "warden_events_total",
    "verdicts": "warden_verdicts_total",
    "latency": "warden_process_latency_seconds",
}
GRAFANA_VARS = [
    ("$__rate_interval", "1m"), ("${__rate_interval}", "1m"),
    ("$__interval_ms", "15000"), ("${__interval_ms}", "15000"),
    ("$__interval", "15s"), ("${__interval}", "15s"),
    ("$__range_s", "300"), ("${__range_s}", "300"),
    ("$__range_ms", "300000"), ("${__range_ms}", "300000"),
    ("$__range", "5m"), ("${__range}", "5m"),
]


class CheckFailed(Exception):
    pass


def log(msg):
    print(f"promql_check: {msg}", flush=True)


def remaining():
    return DEADLINE - time.monotonic()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    """(status, body) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


def find_warden(arg):
    if arg:
        p = Path(arg)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise CheckFailed(f"warden binary {p} is not an executable file")
        return p
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    for kind in ("release", "debug"):
        p = Path(target) / kind / "warden"
        if p.is_file() and os.access(p, os.X_OK):
            return p
    raise CheckFailed(f"no warden binary in {target}/release or {target}/debug (build it first, or pass its path)")


def scenario_files(arg, tmp):
    if arg:
        d = Path(arg)
    else:
        d = tmp / "scenarios"
        gen = REPO.parent / "shared" / "scenarios" / "gen.py"
        if not gen.is_file():
            raise CheckFailed(f"scenario generator {gen} not found (../shared sits beside the repo)")
        log(f"generating scenarios: python3 {os.path.relpath(gen, REPO)} --out {d}")
        r = subprocess.run([sys.executable, str(gen), "--out", str(d)], cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0:
            raise CheckFailed(f"gen.py failed ({r.returncode}): {r.stderr.decode(errors='replace')[-500:]}")
    files = sorted(d.glob("*.jsonl"))
    if not files:
        raise CheckFailed(f"no *.jsonl scenario files in {d}")
    return files


def build_stream(files, out):
    """One JSON-lines file ordered by `ts`; unparseable lines kept, at the end."""
    good, bad = [], []
    for f in files:
        for raw in f.read_bytes().split(b"\n"):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
                ts = obj["ts"] if isinstance(obj, dict) else None
                if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
                    raise ValueError("no numeric ts")
                good.append((ts, raw))
            except (ValueError, KeyError, UnicodeDecodeError, RecursionError):
                bad.append(raw)
    good.sort(key=lambda t: t[0])  # stable: a scenario's order is kept for equal ts
    with open(out, "wb") as w:
        for _, raw in good:
            w.write(raw + b"\n")
        for raw in bad:
            w.write(raw + b"\n")
    log(f"stream: {len(good)} events ordered by ts + {len(bad)} unparseable lines from {len(files)} files -> {out}")
    return len(good) + len(bad)


def rule_files():
    return sorted(p for p in (DEPLOY / "prometheus").glob("*.yml") if "rules" in p.name)


def count_rules_in_files(files):
    """Rules declared in the rule files (`- alert:` / `- record:` lines; no YAML parser in stdlib)."""
    n = 0
    for f in files:
        n += len(re.findall(r"^\s*-\s+(?:alert|record):", f.read_text(), re.M))
    return n


def dashboard_exprs():
    """(dashboard file, panel title, expr with Grafana variables replaced) of every target."""
    out = []
    for f in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        dash = json.loads(f.read_text())
        variables = [v.get("name") for v in dash.get("templating", {}).get("list", []) if v.get("name")]

        def subst(expr):
            for k, v in GRAFANA_VARS:
                expr = expr.replace(k, v)
            for name in variables:
                expr = re.sub(r"\$\{" + re.escape(name) + r"(?::[a-z]+)?\}", ".*", expr)
                expr = re.sub(r"\$" + re.escape(name) + r"\b", ".*", expr)
                expr = expr.replace("[[" + name + "]]", ".*")
            return expr

        def walk(node, title):
            if isinstance(node, dict):
                title = node.get("title", title) if "targets" in node or "type" in node else title
                if isinstance(node.get("expr"), str) and node["expr"].strip():
                    out.append((f.name, title, subst(node["expr"])))
                for v in node.values():
                    walk(v, title)
            elif isinstance(node, list):
                for v in node:
                    walk(v, title)

        walk(dash.get("panels", []), None)
        leftover = [e for _, _, e in out if re.search(r"\$\{?\w", e)]
        if leftover:
            raise CheckFailed(f"{f.name}: unreplaced Grafana variable in: {leftover[0]}")
    return out


def query(prom, expr):
    status, body = http_get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=10)
    try:
        doc = json.loads(body)
    except ValueError:
        return None, f"HTTP {status}: {body[:200]!r}"
    if status != 200 or doc.get("status") != "success":
        return None, f"HTTP {status}: {doc.get('errorType')}: {doc.get('error')}"
    return doc["data"], None


def finite_values(data):
    vals = []
    if data["resultType"] == "vector":
        vals = [s["value"][1] for s in data["result"]]
    elif data["resultType"] == "matrix":
        vals = [v[1] for s in data["result"] for v in s["values"]]
    elif data["resultType"] == "scalar":
        vals = [data["result"][1]]
    return [float(v) for v in vals if math.isfinite(float(v))]


def start(cmd, logfile, cwd, env=None):
    f = open(logfile, "wb")
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    f.close()
    return p


def stop(p, name, grace=15):
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log(f"{name} did not stop within {grace}s of SIGTERM; killing it")
        p.kill()
        p.wait(timeout=5)


def tail(path, n=25):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + l for l in lines[-n:])


def main(argv):
    if len(argv) > 2 or any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    warden = find_warden(argv[0] if argv else None)
    prometheus_bin = shutil.which("prometheus")
    if not prometheus_bin:
        raise CheckFailed("prometheus is not on PATH (source .ci/setup.sh)")
    rules = rule_files()
    if not rules:
        raise CheckFailed("no deploy/prometheus/*rules*.yml")
    exprs = dashboard_exprs()
    if not exprs:
        raise CheckFailed("no PromQL expr in deploy/grafana/dashboards/*.json")

    tmp = Path(tempfile.mkdtemp(prefix="warden-promql-"))
    wp = pp = None
    ok = False
    try:
        stream = tmp / "stream.jsonl"
        build_stream(scenario_files(argv[1] if len(argv) > 1 else None, tmp), stream)
        wport, pport = free_port(), free_port()
        while pport == wport:
            pport = free_port()
        waddr, prom = f"127.0.0.1:{wport}", f"http://127.0.0.1:{pport}"

        cfg = tmp / "prometheus.yml"
        cfg.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "rule_files:\n" + "".join(f"  - {json.dumps(str(r))}\n" for r in rules) +
            "scrape_configs:\n  - job_name: warden\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
            f"    static_configs:\n      - targets: [\"{waddr}\"]\n")
        # Prometheus first, so its scrapes see warden's counters from their start.
        log(f"starting prometheus on {prom} (rules: {', '.join(os.path.relpath(r, REPO) for r in rules)})")
        pp = start([prometheus_bin, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{pport}", "--log.level=warn"], tmp / "prometheus.log", tmp)
        t0 = time.monotonic()
        while http_get(f"{prom}/-/ready")[0] != 200:
            if pp.poll() is not None:
                raise CheckFailed(f"prometheus exited with {pp.returncode}:\n{tail(tmp / 'prometheus.log')}")
            if time.monotonic() - t0 > 30:
                raise CheckFailed(f"prometheus not ready within 30s:\n{tail(tmp / 'prometheus.log')}")
            time.sleep(0.25)
        # Prometheus applies discovered targets only every ~5 s: wait for its first scrape
        # attempt (up == 0, nothing listens yet), so the counters' zeros are recorded
        # before warden processes the stream, and rate() over them is not empty.
        t0 = time.monotonic()
        while True:
            data, _ = query(prom, 'up{job="warden"}')
            if data and data["result"]:
                break
            if time.monotonic() - t0 > 20:
                raise CheckFailed(f"prometheus made no scrape attempt within 20s:\n{tail(tmp / 'prometheus.log')}")
            time.sleep(0.25)

        cmd = [str(warden), "run", "--http", waddr, "--state", str(tmp / "state"), "--load", str(stream)]
        log("starting " + " ".join(cmd))
        wp = start(cmd, tmp / "warden.log", tmp)
        t0 = time.monotonic()
        while True:
            code, _ = http_get(f"http://{waddr}/ready", timeout=2)
            if code == 200:
                break
            if wp.poll() is not None:
                raise CheckFailed(f"warden exited with {wp.returncode} before /ready:\n{tail(tmp / 'warden.log')}")
            if time.monotonic() - t0 > READY_TIMEOUT:
                raise CheckFailed(f"warden /ready not 200 within {READY_TIMEOUT}s (last: {code or 'no answer'}):\n"
                                  f"{tail(tmp / 'warden.log')}")
            time.sleep(0.25)
        log(f"warden ready after {time.monotonic() - t0:.1f}s")

        # Let Prometheus scrape for a while: events visible, and enough samples for rate().
        t_ready = time.monotonic()
        while True:
            elapsed = time.monotonic() - t_ready
            data, _ = query(prom, 'sum(warden_events_total{job="warden"})')
            events = finite_values(data) if data else []
            data, _ = query(prom, 'sum(count_over_time(up{job="warden"}[1m]))')
            scrapes = finite_values(data) if data else []
            if elapsed >= SETTLE_MIN and events and events[0] > 0 and scrapes and scrapes[0] >= 5:
                break
            if wp.poll() is not None:
                raise CheckFailed(f"warden exited with {wp.returncode} while being scraped:\n{tail(tmp / 'warden.log')}")
            if elapsed > 45 or remaining() < 25:
                raise CheckFailed(f"after {elapsed:.0f}s Prometheus has warden_events_total={events or 'none'} "
                                  f"and {scrapes or 'no'} scrapes; warden log:\n{tail(tmp / 'warden.log')}")
            time.sleep(1)
        log(f"scraped for {time.monotonic() - t_ready:.0f}s: {events[0]:.0f} events counted, {scrapes[0]:.0f} scrapes")

        failures = []
        n_ok = 0
        # Dashboard expressions.
        panel_data = {}  # panel title -> True if any of its targets returned finite data
        for fname, title, expr in exprs:
            data, err = query(prom, expr)
            if err:
                failures.append(f"{fname} panel {title!r}: {expr}\n      -> {err}")
                continue
            n_ok += 1
            panel_data[title] = panel_data.get(title, False) or bool(finite_values(data))
        # Rule expressions, as Prometheus loaded them.
        data_status, body = http_get(f"{prom}/api/v1/rules")
        try:
            groups = json.loads(body)["data"]["groups"]
        except (ValueError, KeyError, TypeError):
            raise CheckFailed(f"GET /api/v1/rules failed: HTTP {data_status} {body[:200]!r}")
        loaded = [r for g in groups for r in g["rules"]]
        declared = count_rules_in_files(rules)
        if len(loaded) != declared:
            failures.append(f"Prometheus loaded {len(loaded)} rules but the rule files declare {declared}")
        for r in loaded:
            data, err = query(prom, r["query"])
            if err:
                failures.append(f"rule {r['name']}: {r['query']}\n      -> {err}")
                continue
            n_ok += 1
            if r.get("health") == "err":
                failures.append(f"rule {r['name']} evaluation error: {r.get('lastError')}")
        firing = sorted({r["name"] for r in loaded if r.get("state") == "firing"})
        pending = sorted({r["name"] for r in loaded if r.get("state") == "pending"})

        # Required panels must show data.
        with_data = []
        for what, metric in REQUIRED_PANELS.items():
            titles = sorted({t for _, t, e in exprs if metric in e})
            if not titles:
                failures.append(f"no dashboard panel queries {metric} (the {what} panel)")
            elif not any(panel_data.get(t) for t in titles):
                failures.append(f"the {what} panel ({', '.join(map(repr, titles))}) returns no data")
            else:
                with_data.append(what)
        empty = sorted(t for t, has in panel_data.items() if not has)
        log(f"panels without data in this scenario run (informational): {', '.join(empty) or 'none'}")
        log(f"alerts firing: {', '.join(firing) or 'none'}; pending: {', '.join(pending) or 'none'}")
        if wp.poll() is not None:
            failures.append(f"warden exited with {wp.returncode} during the check:\n{tail(tmp / 'warden.log')}")
        if failures:
            for f in failures:
                log("FAIL " + f)
            raise CheckFailed(f"{len(failures)} problem(s)")
        print(f"promql: {n_ok} expressions ok ({len(exprs)} dashboard, {len(loaded)} rules), "
              f"{len(with_data)} panels with data ({', '.join(with_data)})", flush=True)
        ok = True
        return 0
    finally:
        stop(wp, "warden", grace=min(20, max(5, remaining())))
        if wp is not None and wp.returncode not in (0, None, -signal.SIGTERM) and ok:
            log(f"note: warden exited with {wp.returncode} after SIGTERM:\n{tail(tmp / 'warden.log', 10)}")
        stop(pp, "prometheus", grace=10)
        if ok or not os.environ.get("WARDEN_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp} (WARDEN_KEEP_TMP set)")


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except CheckFailed as e:
        print(f"promql_check: FAILED: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except subprocess.TimeoutExpired as e:
        print(f"promql_check: FAILED: timed out: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
