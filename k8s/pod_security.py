"""Pod Security Standard `restricted`, in the typed objects every workload of the platform uses."""

from __future__ import annotations

from cdk8s_plus_30 import k8s

# A UID above the range host users take (checkov CKV_K8S_40); the images need no particular user.
NON_ROOT_UID = 10001
# The name the runtime gets for NON_ROOT_UID, which no image's /etc/passwd lists.
RUNTIME_USER = "app"


def restricted_container() -> k8s.SecurityContext:
    """Non-root, no privilege escalation, every capability dropped, RuntimeDefault seccomp, read-only root."""
    return k8s.SecurityContext(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        capabilities=k8s.Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.SeccompProfile(type="RuntimeDefault"),
    )


def restricted_pod() -> k8s.PodSecurityContext:
    return k8s.PodSecurityContext(
        run_as_non_root=True,
        run_as_user=NON_ROOT_UID,
        run_as_group=NON_ROOT_UID,
        fs_group=NON_ROOT_UID,
        seccomp_profile=k8s.SeccompProfile(type="RuntimeDefault"),
    )


def runtime_identity_env(*, home: str) -> list[k8s.EnvVar]:
    """What a process running as NON_ROOT_UID looks up about its user, which the image cannot answer.

    Python's `getpass.getuser()` reads LOGNAME/USER before /etc/passwd: without them a UID the image does
    not list raises `KeyError: 'getpwuid(): uid not found'` (torch.compile in vLLM 0.11, pytorch#140765,
    vllm#44548). HOME must be a mounted, writable path: the root filesystem is read-only.
    """
    return [
        k8s.EnvVar(name="USER", value=RUNTIME_USER),
        k8s.EnvVar(name="LOGNAME", value=RUNTIME_USER),
        k8s.EnvVar(name="HOME", value=home),
    ]
