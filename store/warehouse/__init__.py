"""The warehouse: a space's entity tables (LINKED audiences' Data Graph), where full runs read them."""
