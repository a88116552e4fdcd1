"""Feature declarations and pure computation shared by the streaming and batch jobs."""
