"""Training and evaluation of the sentiment head (run by hand; not imported by the jobs)."""
