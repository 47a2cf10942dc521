"""Saved runs read back for `normbench report`, and runs from several machines merged into one.

A merged run keys its results by (kind, case id, device): each result carries its device's
label in `Result.device` and the run keeps every device's environment in `env["devices"]`, so a
merged run saved as JSON can be merged again. The tables add a `device` column when a run holds
more than one device (see `split_by_device`).

A file that cannot be read as a normbench run is an input error for `report` (exit 2, one sentence
naming the file and the problem); exit 3 stays for baselines (`compare`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from normbench.env import FINGERPRINT_KEYS
from normbench.errors import BaselineError, UsageError
from normbench.results import Finding, Level, Result, Run, load_run


def read_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Load each file, refusing one that is missing, corrupt, foreign or holds rows of the wrong
    type, with one sentence naming the file (UsageError, exit 2)."""
    if not paths:
        raise UsageError("give at least one saved run (a .json file written by a suite)")
    runs = []
    for path in paths:
        try:
            runs.append(load_run(path))
        except BaselineError as exc:
            raise UsageError(str(exc)) from None
    return runs


def fingerprint_of(env: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(env.get(k, "")) for k in FINGERPRINT_KEYS)


def device_groups(run: Run) -> list[tuple[dict[str, Any], list[Result]]]:
    """(environment, results) per device in the run: one group for a plain run, several for a
    merged one."""
    devices = run.env.get("devices")
    if not isinstance(devices, dict) or not devices:
        return [(run.env, list(run.results))]
    groups: dict[str, list[Result]] = {label: [] for label in devices}
    for r in run.results:
        groups.setdefault(r.device, []).append(r)
    return [(dict(devices.get(label) or {}), rows) for label, rows in groups.items() if rows]


def labels_for(envs: Sequence[dict[str, Any]]) -> list[str]:
    """A short, distinct label per fingerprint: the device name, plus the fingerprint keys that
    tell apart two fingerprints on the same device (e.g. 'NVIDIA H100 (torch 2.5.1)')."""
    names = [str(e.get("device_name") or e.get("device") or "unknown device") for e in envs]
    out = []
    for i, env in enumerate(envs):
        twins = [e for j, e in enumerate(envs) if names[j] == names[i] and j != i]
        parts = [
            f"{k} {env.get(k)}"
            for k in FINGERPRINT_KEYS[1:]
            if any(str(t.get(k)) != str(env.get(k)) for t in twins)
        ]
        out.append(names[i] + (f" ({', '.join(parts)})" if parts else ""))
    return out


def devices(run: Run) -> dict[str, dict[str, Any]]:
    """{label: environment} of the devices in a run."""
    d = run.env.get("devices")
    if isinstance(d, dict) and d:
        return {str(k): dict(v or {}) for k, v in d.items()}
    return {labels_for([run.env])[0]: run.env}


def split_by_device(run: Run) -> list[tuple[str, Run]]:
    """One single-device run per device, in the order the devices were merged."""
    d = run.env.get("devices")
    if not isinstance(d, dict) or len(d) <= 1:
        return [(next(iter(devices(run))), run)]
    out = []
    for label, env in d.items():
        results = [r for r in run.results if r.device == label]
        if results:
            out.append((label, Run(run.suite, dict(env or {}), run.config, results,
                                   created=run.created, wall_s=run.wall_s)))  # fmt: skip
    return out


def merge(runs: Sequence[Run], names: Sequence[str] | None = None) -> list[Run]:
    """One run per suite (in the order suites first appear), results keyed by (kind, case id,
    device fingerprint). A later file's result replaces an earlier one with the same key."""
    names = list(names or [f"run {i + 1}" for i in range(len(runs))])
    by_suite: dict[str, list[tuple[str, Run]]] = {}
    for name, run in zip(names, runs, strict=True):
        by_suite.setdefault(run.suite, []).append((name, run))
    return [
        parts[0][1] if len(parts) == 1 else _merge_suite(suite, parts)
        for suite, parts in by_suite.items()
    ]


def _merge_suite(suite: str, parts: list[tuple[str, Run]]) -> Run:
    groups: list[tuple[str, dict[str, Any], list[Result], Run]] = [
        (name, env, rows, run) for name, run in parts for env, rows in device_groups(run)
    ]
    fps = list(dict.fromkeys(fingerprint_of(env) for _, env, _, _ in groups))
    envs: dict[tuple[str, ...], dict[str, Any]] = {}
    for _, env, _, _ in groups:
        envs[fingerprint_of(env)] = env  # the later run's environment, like its rows
    labels = dict(zip(fps, labels_for([envs[fp] for fp in fps]), strict=True))
    keyed: dict[tuple[str, str, str], Result] = {}
    replaced = 0
    for _, env, results, run in groups:
        label = labels[fingerprint_of(env)]
        for r in results:
            key = (r.kind, r.case_id, label)
            replaced += key in keyed
            keyed.pop(key, None)  # the replacement goes where the later file put it
            keyed[key] = r.with_device(label, run.created)
    where = ", ".join(f"{name} ({labels[fingerprint_of(env)]})" for name, env, _, _ in groups)
    findings = [Finding(f"Merged {len(parts)} runs: {where}.")]
    if replaced:
        findings.append(Finding(
            f"{replaced} results appeared in more than one run for the same case and device: "
            "the later file's are shown.", Level.WARNING,
        ))  # fmt: skip
    for name, run in parts:
        findings += [replace(f, text=f"{name}: {f.text}") for f in run.findings]
    env: dict[str, Any] = {
        k: v for k, v in envs[fps[0]].items() if all(e.get(k) == v for e in envs.values())
    }
    env["devices"] = {labels[fp]: envs[fp] for fp in fps}
    runs = [run for _, run in parts]
    return Run(
        suite=suite,
        env=env,
        config={"merged_from": [name for name, _ in parts], "configs": [r.config for r in runs]},
        results=list(keyed.values()),
        findings=findings,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        interrupted=any(r.interrupted for r in runs),
        wall_s=math.fsum(r.wall_s for r in runs),
    )


def environment_table(run: Run, keys: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """The environment as (columns, rows): one value column per device."""
    devs = devices(run)
    present = [k for k in keys if any(k in env for env in devs.values())]
    if len(devs) == 1:
        env = next(iter(devs.values()))
        # A header on each column (an empty one renders as a blank cell in Markdown and HTML).
        return ["environment", "value"], [[k, str(env[k])] for k in present if k in env]
    cols = ["environment", *devs]
    return cols, [[k, *(str(env.get(k, "-")) for env in devs.values())] for k in present]


def row_devices(run: Run, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The device name of each tidy row (a merged run holds several)."""
    devs = devices(run)
    if len(devs) == 1:
        name = str(next(iter(devs.values())).get("device_name", ""))
        return [name] * len(rows)
    return [str(devs.get(r.get("device") or "", {}).get("device_name", "")) for r in rows]
