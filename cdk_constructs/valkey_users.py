"""The RBAC users of an ElastiCache for Valkey cache: one working user and the disabled `default` every group needs."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_elasticache as elasticache
from constructs import Construct


@dataclass(frozen=True)
class ValkeyUserIds:
    """Construct ids (which keep the templates' logical ids) and ElastiCache ids of the three resources."""

    default_construct: str
    user_construct: str
    group_construct: str
    default_user_id: str
    user_id: str
    group_id: str


def valkey_user_group(
    scope: Construct, ids: ValkeyUserIds, *, user_name: str, access_string: str, password: str
) -> elasticache.CfnUserGroup:
    """A user group of the working user and a `default` user that is switched off and can do nothing.

    Every user group needs a user named "default". A Valkey user group admits only users with a password or IAM,
    not no-password ones (ElastiCache User Guide, Clusters.RBAC, limitations), so the default user has the same
    password, which "off" never lets it use. `password` is a dynamic reference CloudFormation resolves; the
    template holds only the reference.
    """
    authentication = {"Type": "password", "Passwords": [password]}
    default_user = elasticache.CfnUser(
        scope,
        ids.default_construct,
        engine="valkey",
        user_id=ids.default_user_id,
        user_name="default",
        access_string="off -@all",
        authentication_mode=authentication,
    )
    user = elasticache.CfnUser(
        scope,
        ids.user_construct,
        engine="valkey",
        user_id=ids.user_id,
        user_name=user_name,
        access_string=access_string,
        authentication_mode=authentication,
    )
    group = elasticache.CfnUserGroup(
        scope,
        ids.group_construct,
        engine="valkey",
        user_group_id=ids.group_id,
        user_ids=[default_user.user_id, user.user_id],
    )
    group.add_resource_dependency(default_user)
    group.add_resource_dependency(user)
    return group
