"""Generated protobuf/gRPC stubs (scripts/gen_protos.sh); never edit by hand."""
