"""The spec language and its builder: from YAML text to a placed network of primitives."""
