"""Invert: returns binary. Send bytes and get every byte inverted (255 - b); send a number n
and get n bytes of a test pattern."""
from Algorithmia import ADK


def apply(input):
    if isinstance(input, (bytes, bytearray)):
        return bytes(255 - b for b in input)
    return bytes(i % 256 for i in range(int(input)))


algorithm = ADK(apply)
algorithm.init(b"\x00\x10")
