"""SeeFood: is it a fruit or a vegetable? Asks the right specialist algorithm.

A composition: it calls other algorithms through the official client, with no key in its
code. Algostore gives it ALGORITHMIA_API and signs its calls with a short-lived key derived
from the call it is serving (the algorithm needs `pipeline_enabled`).
"""
import Algorithmia
from Algorithmia import ADK

FRUITY = {"apple", "pear", "banana", "grape", "orange", "lemon", "cherry", "peach", "tomato",
          "strawberry"}


def apply(input):
    if isinstance(input, dict):
        food, owner = str(input.get("food", "")), str(input.get("owner", "demo"))
    else:
        food, owner = str(input), "demo"
    specialist = "fruit" if food.strip().lower() in FRUITY else "vegetable"
    client = Algorithmia.client()
    answer = client.algo(f"{owner}/{specialist}").pipe(food).result
    return {"verdict": specialist, "details": answer}


algorithm = ADK(apply)
algorithm.init({"food": "banana"})
