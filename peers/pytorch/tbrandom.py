"""trainbench's stateless random draws (src/core/rng.h) in numpy, bit for bit: the golden
runs use them to apply the very dropout masks trainbench draws."""
import numpy as np

_U64 = np.uint64


def splitmix64(x):
    with np.errstate(over="ignore"):
        x = x + _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
        return x ^ (x >> _U64(31))


def counter_uniform(seed, stream, count):
    """counter_uniform(seed, stream, i) for i in [0, count): float32 in [0, 1), 24 bits."""
    s = splitmix64(np.array([seed], dtype=np.uint64))
    t = splitmix64(s ^ _U64(stream))
    h = splitmix64(t ^ np.arange(count, dtype=np.uint64))
    return (h >> _U64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def dropout_keep_mask(seed, step, node, p, count):
    """The elements trainbench's dropout layer at graph node `node` keeps at `step`."""
    stream = ((int(step) << 16) ^ int(node)) & 0xFFFFFFFFFFFFFFFF
    return counter_uniform(seed, stream, count) >= np.float32(p)
