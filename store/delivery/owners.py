"""Audiences and computed traits as owners of destination connections and activations.

Both can be sent to destinations (Segment: "create and send Audiences and computed traits"), so every
connection and activation names its owner by id: `aud_…` for an audience, `tra_…` for a computed
trait. An audience's changes are entries and exits; a computed trait's are new values.
"""

from __future__ import annotations

from store.db.models import Audience, ComputedTrait

Owner = Audience | ComputedTrait
TRAIT_PREFIX = "tra_"


def is_trait(owner: Owner) -> bool:
    return isinstance(owner, ComputedTrait)


def profile_type(owner: Owner) -> str:
    """USERS, ACCOUNTS or LINKED: what the owner's members or values belong to."""
    return owner.definition_type if isinstance(owner, ComputedTrait) else owner.audience_type
