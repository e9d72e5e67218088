"""TensorFlow Lite (LiteRT) models: read, count, export and time ``.tflite`` files."""
