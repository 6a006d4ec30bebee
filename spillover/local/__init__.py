"""The local composition: ``spillover up`` (etcd, an agent per region, an edge, an app deployed,
all on this machine) and the local etcd processes that it, the tests and the benchmarks run."""
