"""The corpus is data for tests/assess, never tests itself: keep pytest from collecting it."""

collect_ignore_glob = ["*"]
