"""Runs a process under the contract a synthesized pod gives its container, on this machine.

From a Deployment in `dist/k8s/` (or a test's synth) and one of its containers, `pod_contract` reads what
the kubelet would give the process: the pod's `runAsUser`/`runAsGroup`, the container's environment (plain
values, Secret references and deploy-time placeholders resolved from what the test supplies, nothing else),
a read-only root filesystem when `readOnlyRootFilesystem` is set, an empty writable directory at every
`emptyDir` mount and the given files at every ConfigMap mount. `Sandbox.wrap` turns a command into a
`bwrap` (bubblewrap, Debian package) command that runs it so: a new user namespace mapping the UID, the
host's root bound read-only, tmpfs at the emptyDir paths, a cleared environment.

If the process cannot start like that, neither can the pod: a write outside the mounted volumes, a lookup
of a user the image does not have, an environment variable the container does not set.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

DEPLOY_TIME_MARK = "<deploy-time "


class BubblewrapMissingError(RuntimeError):
    """bwrap is not on PATH."""


# The delivery pipeline's synth step sets this (stacks/delivery.py): CodeBuild runs builds in non-privileged Docker
# containers, whose default seccomp profile refuses the unshare/clone flags of a new user namespace without
# CAP_SYS_ADMIN (moby/profiles seccomp/default_linux.go). There, and only when it is set, a sandbox that cannot start
# skips the pod-contract tests with bwrap's own error; everywhere else (`make test`, .ci/run) it fails them.
SANDBOX_OPTIONAL_ENV = "GENAI_POD_CONTRACT_SANDBOX"


@functools.cache
def _user_namespace_error(bwrap: str) -> str | None:
    probe = subprocess.run(
        [bwrap, "--unshare-user", "--ro-bind", "/", "/", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return None if probe.returncode == 0 else (probe.stderr.strip() or f"exit status {probe.returncode}")


def require_user_namespaces(bwrap: str) -> None:
    """bwrap can start a user namespace here, or the test stops: skipped where the environment says the sandbox is
    optional (SANDBOX_OPTIONAL_ENV=optional), failed with bwrap's reason otherwise."""
    error = _user_namespace_error(bwrap)
    if error is None:
        return
    reason = f"bwrap cannot create a user namespace here ({error}), so the pod's contract cannot be reproduced"
    if os.environ.get(SANDBOX_OPTIONAL_ENV) == "optional":
        pytest.skip(f"{reason}; {SANDBOX_OPTIONAL_ENV}=optional")
    raise BubblewrapMissingError(f"{reason}; set {SANDBOX_OPTIONAL_ENV}=optional only where that is expected")


class ContractError(ValueError):
    """The test did not supply something the container's spec needs (a Secret key, a deploy-time value)."""


@dataclass(frozen=True)
class Sandbox:
    uid: int
    gid: int
    env: dict[str, str]
    writable_paths: tuple[str, ...]
    read_only_binds: dict[str, Path] = field(default_factory=dict)
    read_only_root: bool = True

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """`argv` under bubblewrap with this contract."""
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise BubblewrapMissingError("bwrap not on PATH: run scripts/ensure-sandbox.sh (Debian's bubblewrap)")
        require_user_namespaces(bwrap)
        mount_points = [*self.writable_paths, *self.read_only_binds]
        command = [bwrap, "--unshare-user", "--uid", str(self.uid), "--gid", str(self.gid)]
        command += ["--die-with-parent", "--new-session"]
        command += _host_root(mount_points, writable=not self.read_only_root)
        command += ["--dev", "/dev", "--proc", "/proc"]
        for path in self.writable_paths:
            command += ["--tmpfs", path]
        for target, source in self.read_only_binds.items():
            command += ["--ro-bind", str(source), target]
        if self.read_only_root:
            # The root and every directory made for a mount point become read-only; the mounts stay as set.
            command += ["--remount-ro", "/"]
        command += ["--clearenv"]
        for name, value in self.env.items():
            command += ["--setenv", name, value]
        command += ["--chdir", "/", "--", *argv]
        return command


# Replaced by bwrap's own /dev and /proc, or by the pod's volumes.
_SKIPPED = {"/dev", "/proc", "/sys", "/tmp", "/run"}


def _host_root(mount_points: Sequence[str], *, writable: bool) -> list[str]:
    """bwrap arguments for a root that mirrors the host's, bound read-only, plus the directories the pod's
    mount points need (a container runtime creates those in the image; a read-only bind of the host's
    root could not). Directories on the way to a missing mount point are rebuilt from their children."""
    if writable:
        return ["--bind", "/", "/"]
    expanded = {"/"}
    for point in mount_points:
        path = Path(point)
        for ancestor in [path, *path.parents]:
            if ancestor.exists() and ancestor != path:
                expanded.update(str(a) for a in [ancestor, *ancestor.parents])
                break
    args = ["--tmpfs", "/"]

    def mirror(directory: Path) -> None:
        for child in sorted(directory.iterdir()):
            name = str(child)
            if name in _SKIPPED:
                continue
            if child.is_symlink():
                args.extend(["--symlink", os.readlink(child), name])
            elif name in expanded and child.is_dir():
                args.extend(["--dir", name])
                mirror(child)
            else:
                args.extend(["--ro-bind", name, name])

    mirror(Path("/"))
    for point in mount_points:
        if not Path(point).exists():
            args.extend(["--dir", point])
    return args


def _security_value(pod: Mapping[str, Any], container: Mapping[str, Any], key: str) -> Any:
    """A container's securityContext value, else the pod's (Kubernetes' precedence)."""
    value = (container.get("securityContext") or {}).get(key)
    return value if value is not None else (pod.get("securityContext") or {}).get(key)


def pod_contract(
    deployment: Mapping[str, Any],
    container_name: str,
    *,
    secrets: Mapping[str, Mapping[str, str]],
    deploy_time_values: Mapping[str, str],
    config_map_dirs: Mapping[str, Path],
    omit_env: Mapping[str, str] = {},
    extra_env: Mapping[str, str] = {},
) -> Sandbox:
    """The sandbox for `container_name` of `deployment`.

    - `secrets`: Secret name -> key -> value, for `valueFrom.secretKeyRef`.
    - `deploy_time_values`: env name -> value, for each plain value that holds a deploy-time placeholder
      (an endpoint CloudFormation resolves); a placeholder without one is a ContractError.
    - `config_map_dirs`: ConfigMap name -> local directory holding its files.
    - `omit_env`: env name -> why the test cannot provide it (stated, never silent).
    - `extra_env`: what the image's own environment provides (PATH) or the test needs on top (a CA bundle).
    """
    pod = deployment["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == container_name]
    uid = _security_value(pod, container, "runAsUser")
    gid = _security_value(pod, container, "runAsGroup")
    if uid is None or gid is None:
        raise ContractError(f"container {container_name} sets no runAsUser/runAsGroup: its image's user would run it")
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        name = entry["name"]
        if name in omit_env:
            continue
        if "value" in entry:
            value = str(entry["value"])
            if DEPLOY_TIME_MARK in value:
                if name not in deploy_time_values:
                    raise ContractError(f"env {name} holds a deploy-time value; supply it in deploy_time_values")
                value = deploy_time_values[name]
            env[name] = value
            continue
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            raise ContractError(f"env {name}: only values and secretKeyRef are supported here: {entry}")
        try:
            env[name] = secrets[ref["name"]][ref["key"]]
        except KeyError:
            raise ContractError(f"env {name} reads Secret {ref['name']} key {ref['key']}; supply it") from None
    env.update(extra_env)
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    writable: list[str] = []
    binds: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            writable.append(mount["mountPath"])
        elif "configMap" in volume:
            binds[mount["mountPath"]] = config_map_dirs[volume["configMap"]["name"]]
        else:
            raise ContractError(f"volume {mount['name']}: only emptyDir and configMap are supported here")
    return Sandbox(
        uid=int(uid),
        gid=int(gid),
        env=env,
        writable_paths=tuple(writable),
        read_only_binds=binds,
        read_only_root=bool(_security_value(pod, container, "readOnlyRootFilesystem")),
    )
