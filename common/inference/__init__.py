"""The model stage: packaged encoders, the sentiment head and one shared `RunInference` step."""
