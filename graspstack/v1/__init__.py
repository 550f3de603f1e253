"""Generated gRPC code for protos/graspstack/v1 (`make proto`); do not edit."""
