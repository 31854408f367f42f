"""Hello: the demo algorithm, written with the Algorithmia ADK exactly as for Algorithmia."""
from Algorithmia import ADK


def apply(input):
    if isinstance(input, dict) and "name" in input:
        return {"greeting": "Hello, {}!".format(input["name"])}
    return "Hello, {}!".format(input)


algorithm = ADK(apply)
algorithm.init("world")
