"""Regional pools: the agent that claims by spare replica_concurrency, and the replicas."""
