"""The agent ↔ replica gRPC contract; the *_pb2* modules are generated at build time."""

# Payloads ride inside messages up to the inline limit; 64 MiB leaves room for larger results.
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
]
