#!/usr/bin/python3
"""Checks packaging/kubernetes/*.yaml for corral's tests: every file parses as YAML (PyYAML,
as kubectl's own YAML decoding would), the ConfigMap's corral.toml parses as TOML and is
written to OUT_TOML (for `corral-supervisor --check`), and the Deployment agrees with it:
probes on the admin listener's port (readiness /readyz, liveness /healthz), a preStop that
drains, terminationGracePeriodSeconds above drain_delay + graceful_timeout, a CPU limit (what
workers = "auto" counts), the config mounted where the command reads it, and the Service
pointing at the listener's port. Prints one JSON object: {"problems": [...], "facts": {...}}.

usage: k8s_manifests.py DIR OUT_TOML
"""
import glob
import json
import os
import re
import sys
import tomllib

import yaml


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(text))
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def main():
    folder, out_toml = sys.argv[1], sys.argv[2]
    problems, facts, by_kind = [], {}, {}
    for path in sorted(glob.glob(os.path.join(folder, "*.yaml"))):
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                for key in ("apiVersion", "kind", "metadata"):
                    if key not in doc:
                        problems.append(f"{os.path.basename(path)}: no {key}")
                by_kind.setdefault(doc.get("kind"), []).append(doc)
    facts["kinds"] = sorted(k for k in by_kind if k)
    for kind in ("ConfigMap", "Deployment", "Service"):
        if len(by_kind.get(kind, [])) != 1:
            problems.append(f"expected one {kind}, found {len(by_kind.get(kind, []))}")
    if problems:
        print(json.dumps({"problems": problems, "facts": facts}))
        return
    cm, dep, svc = by_kind["ConfigMap"][0], by_kind["Deployment"][0], by_kind["Service"][0]
    text = cm["data"]["corral.toml"]
    with open(out_toml, "w", encoding="utf-8") as f:
        f.write(text)
    conf = tomllib.loads(text)
    sup, proxy = conf.get("supervisor", {}), conf.get("proxy", {})
    admin_port = port_of(proxy["admin"])
    listen_port = port_of(conf["listener"][0]["address"])
    drain = seconds(sup.get("drain_delay", "0s"))
    graceful = seconds(sup.get("graceful_timeout", "30s"))
    facts.update(drain_delay=drain, graceful_timeout=graceful, admin_port=admin_port)

    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}

    def probe_port(probe):
        p = probe["httpGet"]["port"]
        return ports.get(p) if isinstance(p, str) else p

    for name, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        probe = c.get(name)
        if not probe or probe.get("httpGet", {}).get("path") != path:
            problems.append(f"{name} is not an HTTP GET of {path}")
        elif probe_port(probe) != admin_port:
            problems.append(f"{name} probes port {probe_port(probe)}, the admin listener is on {admin_port}")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    facts["termination_grace"] = grace
    if grace <= drain + graceful:
        problems.append(f"terminationGracePeriodSeconds {grace} is not above drain_delay {drain} + graceful_timeout {graceful}")
    pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if not pre or pre[-1] != "drain" or not pre[0].endswith("corralctl"):
        problems.append(f"preStop is not corralctl ... drain: {pre}")
    cpu_limit = c.get("resources", {}).get("limits", {}).get("cpu")
    facts["cpu_limit"] = cpu_limit
    if not cpu_limit:
        problems.append("no CPU limit: workers = \"auto\" would count every core of the node")
    cmd = c.get("command", [])
    if "-c" not in cmd:
        problems.append(f"the command names no config: {cmd}")
    else:
        cfg = cmd[cmd.index("-c") + 1]
        mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        cm_mount = [mounts[n] for n, v in volumes.items() if v.get("configMap", {}).get("name") == cm["metadata"]["name"]]
        if not cm_mount or os.path.join(cm_mount[0], "corral.toml") != cfg:
            problems.append(f"the ConfigMap is not mounted where the command reads {cfg}")
        run = sup.get("runtime_dir", "/run/corral")
        if run not in mounts.values():
            problems.append(f"runtime_dir {run} is not a mounted volume (the root filesystem is read-only)")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    if any(labels.get(k) != v for k, v in svc["spec"]["selector"].items()):
        problems.append("the Service's selector does not match the pod's labels")
    target = svc["spec"]["ports"][0]["targetPort"]
    if (ports.get(target) if isinstance(target, str) else target) != listen_port:
        problems.append(f"the Service targets {target}, the listener is on {listen_port}")
    print(json.dumps({"problems": problems, "facts": facts}))


if __name__ == "__main__":
    main()
