"""Experiment splits: which group of an audience's split a profile is in.

A profile's bucket is a hash of the split's salt and the profile's id, mod 100; the groups take
contiguous ranges of buckets in their order (the first `percentage` buckets go to the first group,
and so on). A profile's group therefore depends only on its id, the salt and the percentages: it
does not change when other members come and go, and changing percentages moves only the buckets
whose range moved. A holdout group's members are sent nowhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

MOST_GROUPS = 10
BUCKETS = 100


@dataclass(frozen=True)
class Group:
    name: str
    percentage: int
    holdout: bool = False


class SplitError(ValueError):
    """Groups that do not make a split; `field` names the offending part."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def check_groups(groups: list[Group]) -> list[Group]:
    """The groups, if they make a split: 2 to MOST_GROUPS distinct, non-empty names, whole
    percentages summing to 100."""
    if not 2 <= len(groups) <= MOST_GROUPS:
        raise SplitError(f"A split has 2 to {MOST_GROUPS} groups, not {len(groups)}.", "groups")
    names = [group.name for group in groups]
    for index, group in enumerate(groups):
        if not group.name.strip():
            raise SplitError("Each group needs a name.", f"groups[{index}].name")
        if names.index(group.name) != index:
            raise SplitError(f"Two groups are named '{group.name}'; names must differ.", f"groups[{index}].name")
        if not 0 <= group.percentage <= 100:
            raise SplitError("A percentage is a whole number from 0 to 100.", f"groups[{index}].percentage")
    total = sum(group.percentage for group in groups)
    if total != BUCKETS:
        raise SplitError(f"The groups' percentages sum to {total}; they must sum to 100.", "groups")
    return groups


def bucket(salt: str, profile_id: str) -> int:
    digest = hashlib.sha256(f"{salt}\x00{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def group_of(groups: list[Group], salt: str, profile_id: str) -> Group:
    """The group whose range of buckets holds the profile's."""
    place, upper = bucket(salt, profile_id), 0
    for group in groups:
        upper += group.percentage
        if place < upper:
            return group
    raise AssertionError("percentages sum to 100")


@dataclass(frozen=True)
class Assigned:
    """Changed profiles' groups (`of`), and which group names are holdouts: what a delivery target
    aiming at one group (or at none) is sent."""

    of: Mapping[str, str | None]
    holdouts: frozenset[str]

    def sends(self, target_group: str | None, profile_id: str) -> bool:
        group = self.of.get(profile_id)
        if group in self.holdouts:
            return False
        return target_group is None or group == target_group
