"""gRPC services: thin servicers over the pure-Python cores in graspstack (CONTRACTS section 5)."""
