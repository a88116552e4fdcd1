"""The streaming side: Pub/Sub reading, stateful windowing, online store writers."""
