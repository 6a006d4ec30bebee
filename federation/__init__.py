"""The federation core: contract models, etcd mechanics, the federated queue and pure policy.

It imports neither ``edge`` nor ``regional`` (enforced by import-linter).
"""
