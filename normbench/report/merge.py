"""Saved runs read back for `normbench report`, and runs from several machines merged into one.

A merged run keys its rows by (case id, device fingerprint): each row carries its device's label in
`extra["device_label"]` and the run keeps every device's environment in `env["devices"]`, so a
merged run saved as JSON can be merged again. The tables add a `device` column when a run holds
more than one device (see `split_by_device`).

A file that cannot be read as a normbench run is an input error for `report` (exit 2, one sentence
naming the file and the problem); exit 3 stays for baselines (`compare`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from normbench.env import FINGERPRINT_KEYS
from normbench.errors import BaselineError, UsageError
from normbench.results import Row, Run

LABEL_KEY = "device_label"
NUMBER_FIELDS = ("value", "p20", "p80", "ci_low", "ci_high")
TEXT_FIELDS = ("case_id", "suite", "variant", "backend", "dtype", "shape", "mode", "metric", "unit")


def read_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Load each file, refusing one that is missing, corrupt, foreign or holds rows of the wrong
    type, with one sentence naming the file (UsageError, exit 2)."""
    from normbench.results import load_run

    if not paths:
        raise UsageError("give at least one saved run (a .json file written by a suite)")
    runs = []
    for path in paths:
        try:
            run = load_run(path)
        except BaselineError as exc:
            raise UsageError(str(exc)) from None
        check_rows(run, Path(path))
        runs.append(run)
    return runs


def check_rows(run: Run, path: Path) -> None:
    """Types the reporters rely on: a hand-edited or foreign file fails here, not in a plot."""
    if not isinstance(run.suite, str) or not run.suite:
        raise UsageError(f"{path}: malformed run ('suite' must be a name, got {run.suite!r})")
    for i, r in enumerate(run.rows):
        where = f"{path}: row {i + 1}"
        for name in TEXT_FIELDS:
            if not isinstance(getattr(r, name), str):
                got = getattr(r, name)
                raise UsageError(f"{where}: '{name}' must be text, got {got!r}")
        for name in NUMBER_FIELDS:
            v = getattr(r, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise UsageError(
                    f"{where} ({r.case_id}): '{name}' must be a number or null, got {v!r}"
                )
        if r.n is not None and (isinstance(r.n, bool) or not isinstance(r.n, int)):
            raise UsageError(f"{where} ({r.case_id}): 'n' must be a whole number, got {r.n!r}")
        if any(isinstance(s, bool) or not isinstance(s, (int, float)) for s in r.samples):
            raise UsageError(f"{where} ({r.case_id}): 'samples' must be a list of numbers")


def fingerprint_of(env: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(env.get(k, "")) for k in FINGERPRINT_KEYS)


def device_groups(run: Run) -> list[tuple[dict[str, Any], list[Row]]]:
    """(environment, rows) per device in the run: one group for a plain run, several for a
    merged one."""
    devices = run.env.get("devices")
    if not isinstance(devices, dict) or not devices:
        return [(run.env, list(run.rows))]
    groups: dict[str, list[Row]] = {label: [] for label in devices}
    for r in run.rows:
        groups.setdefault(r.extra.get(LABEL_KEY, ""), []).append(r)
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
        rows = [r for r in run.rows if r.extra.get(LABEL_KEY) == label]
        if rows:
            out.append((label, Run(run.suite, dict(env or {}), run.config, rows,
                                   created=run.created, wall_s=run.wall_s)))  # fmt: skip
    return out


def merge(runs: Sequence[Run], names: Sequence[str] | None = None) -> list[Run]:
    """One run per suite (in the order suites first appear), rows keyed by (case id, device
    fingerprint, metric). A later file's row replaces an earlier one with the same key."""
    names = list(names or [f"run {i + 1}" for i in range(len(runs))])
    by_suite: dict[str, list[tuple[str, Run]]] = {}
    for name, run in zip(names, runs, strict=True):
        by_suite.setdefault(run.suite, []).append((name, run))
    return [
        parts[0][1] if len(parts) == 1 else _merge_suite(suite, parts)
        for suite, parts in by_suite.items()
    ]


def _merge_suite(suite: str, parts: list[tuple[str, Run]]) -> Run:
    groups: list[tuple[str, dict[str, Any], list[Row], Run]] = [
        (name, env, rows, run) for name, run in parts for env, rows in device_groups(run)
    ]
    fps = list(dict.fromkeys(fingerprint_of(env) for _, env, _, _ in groups))
    envs: dict[tuple[str, ...], dict[str, Any]] = {}
    for _, env, _, _ in groups:
        envs[fingerprint_of(env)] = env  # the later run's environment, like its rows
    labels = dict(zip(fps, labels_for([envs[fp] for fp in fps]), strict=True))
    keyed: dict[tuple[str, str, str], Row] = {}
    replaced = 0
    for _, env, rows, _ in groups:
        label = labels[fingerprint_of(env)]
        for r in rows:
            key = (r.case_id, label, r.metric)
            replaced += key in keyed
            keyed.pop(key, None)  # the replacement goes where the later file put it
            keyed[key] = replace(r, extra={**r.extra, LABEL_KEY: label})
    where = ", ".join(f"{name} ({labels[fingerprint_of(env)]})" for name, env, _, _ in groups)
    summary = [f"Merged {len(parts)} runs: {where}."]
    if replaced:
        summary.append(
            f"{replaced} rows appeared in more than one run for the same case and device: "
            "the later file's rows are shown."
        )
    for name, run in parts:
        summary += [f"{name}: {line}" for line in run.summary]
    env: dict[str, Any] = {
        k: v for k, v in envs[fps[0]].items() if all(e.get(k) == v for e in envs.values())
    }
    env["devices"] = {labels[fp]: envs[fp] for fp in fps}
    runs = [run for _, run in parts]
    return Run(
        suite=suite,
        env=env,
        config={"merged_from": [name for name, _ in parts], "configs": [r.config for r in runs]},
        rows=list(keyed.values()),
        summary=summary,
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
        return ["environment", ""], [[k, str(env[k])] for k in present if k in env]
    cols = ["environment", *devs]
    return cols, [[k, *(str(env.get(k, "-")) for env in devs.values())] for k in present]


def row_devices(run: Run) -> list[str]:
    """The device name of each row, in row order (a merged run holds several)."""
    devs = devices(run)
    if len(devs) == 1:
        name = str(next(iter(devs.values())).get("device_name", ""))
        return [name] * len(run.rows)
    return [str(devs.get(r.extra.get(LABEL_KEY, ""), {}).get("device_name", "")) for r in run.rows]
