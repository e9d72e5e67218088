"""ONNX: the protobuf reader, op rules and exporter patterns, and the exporter."""
