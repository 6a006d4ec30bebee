"""Regional pools: the agent that claims by spare replica_concurrency, and the replicas."""

import os

# The agent forks only to exec its replicas. grpcio's core runs fork handlers by default (its
# Python layer does not), and a replica forked while other threads were in gRPC died of SIGSEGV
# before exec: 5 of 83 starts under repeated replica kills, 0 of 67 with them off. Set before
# grpc loads (this package is imported before anything that imports it); an explicit setting of
# the operator's wins.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
