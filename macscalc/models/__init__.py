"""Model files people ship (ONNX) read as placed networks, exported and timed."""
