"""The traffic simulator and its Pub/Sub publisher."""
