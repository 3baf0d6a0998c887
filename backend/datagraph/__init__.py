"""The Data Graph: entities in the warehouse and how they join the profile (LINKED audiences)."""
