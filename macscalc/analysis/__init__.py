"""Numbers about a placed network: counts, memory, latency, sweeps."""
