"""A test algorithm that reads the data:// URI it is given, with the key the platform gave
this call (no key in its code), and reports what happened."""
import Algorithmia
from Algorithmia import ADK


def apply(input):
    client = Algorithmia.client()
    try:
        # "suffix": read a URI the input does not spell out whole.
        return {"text": client.file(input["uri"] + input.get("suffix", "")).getString()}
    except Exception as error:  # noqa: BLE001 -- the test wants to see the refusal
        return {"refused": str(error)[:300]}


algorithm = ADK(apply)
algorithm.init({"uri": "data://nobody/none/none"})
