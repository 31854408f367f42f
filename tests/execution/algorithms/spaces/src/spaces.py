"""A test algorithm that uses its data spaces (.algo/temp, .algo/perm, .session) with the key
the platform gave this call, and reports what happened."""
import Algorithmia
from Algorithmia import ADK


def apply(input):
    client = Algorithmia.client()
    results = []
    for step in input["steps"]:
        try:
            if step["op"] == "write":
                client.file(step["uri"]).put(step["text"])
                results.append("written")
            else:
                results.append(client.file(step["uri"]).getString())
        except Exception as error:  # noqa: BLE001 -- the test wants to see the refusal
            results.append("refused: " + str(error)[:200])
    return results


algorithm = ADK(apply)
algorithm.init({"steps": []})
