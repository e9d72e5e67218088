"""Limits on untrusted input, in one place (README: Security model).

Every input may come from a pull request (specs, budget files, baselines, ONNX files,
profiles, CSVs, options), so every size and value that decides how much work a run does
is bounded, and checked before the work starts: a value past its limit is a located
error, never a long run. Each limit is far above what a real network needs.
"""

from __future__ import annotations

MAX_FILE_BYTES = 1 << 20  # a spec or budget file (YAML)
MAX_REPORT_BYTES = 8 << 20  # a baseline report (JSON): some 60 reports of large networks
MAX_NODES = 10_000  # YAML values in a document, aliases counted as what they expand to
MAX_DEPTH = 64  # YAML nesting of lists and mappings
MAX_NUMBER_CHARS = 100  # characters of one YAML number
MAX_BASE_CHAIN = 8  # specs named through base:, one after another

MAX_SIZE = 16_384  # input side in pixels (input size, --res, --size)
MAX_WINDOW = 1_024  # kernel, stride, dilation and padding
MAX_CHANNELS = 1_000_000  # channels, classes, groups and every other positive integer
MAX_REPEATS = 1_000  # n, a row's repeats
MAX_EXPANDED_ROWS = 20_000  # rows once every use of a spec's own blocks is expanded
MAX_LAYERS = 20_000  # placed primitives in one network (DenseNet-264 has about 2,000)
MAX_RATIO = 1_000  # expansion and squeeze ratios (t, r, p)
MAX_ALPHA = 16  # width multiplier α (--alpha, width: {min: m})
MAX_FRACTION_CHARS = 32  # characters of a written ratio or multiplier ('88/24', '0.35')
MAX_COUNT = 10**18  # a limit on MACs, FLOPs, parameters or bytes
MAX_GROWTH = 1_000_000  # --max-growth, in percent
MAX_EXPLAIN_CHANNELS = 4_096  # explain micro traces every input of every output

MAX_ONNX_NODES = 100_000  # nodes in an ONNX graph (each placed layer is at most MAX_LAYERS)
MAX_ONNX_ITEMS = 4_000_000  # messages and repeated values decoded from one ONNX file
MAX_RANK = 8  # dims of an ONNX tensor (initializer, input, declared output)
MAX_CONST_ELEMENTS = 1 << 20  # a constant computed from a file's shape arithmetic
MAX_SWEEP_POINTS = 1_000_000  # α × resolution points of one sweep, sized before expanding
MAX_SWEEP_ALPHAS = 1_000  # distinct α of one sweep (each may need a network of its own)
MAX_CSV_ROWS = 300  # rows of a measurement CSV (calibrate, measure --grid)
MAX_BLOCK_DEPTH = 32  # a spec's own blocks used inside one another
MS_RANGE = (0.001, 10_000_000)  # a latency in ms (measured, or --max-latency)
MAX_PROFILE_CONSTANT = 1e9  # a device profile's rate (G/s), time (µs) or error (%)
MAX_EXPORT_PARAMS = 150_000_000  # parameters an exported model holds (VGG-16: 138 M, 553 MB)
MAX_MEASURE_MACS = 50 * 10**9  # MACs of one measured model (a run takes seconds at most)
MAX_MEASURE_BYTES = 2 << 30  # peak activation memory (fp32) of one measured model
MAX_THREADS = 256  # measure --threads
MAX_RUNS = 10_000  # measure --runs and --warmup (--rounds: at most --runs)

EXCERPT_CHARS = 40  # of a value quoted in an error message
MAX_MESSAGE_CHARS = 1_000  # of an error message
