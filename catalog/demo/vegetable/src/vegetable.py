"""Vegetable: names which part of the plant a vegetable is (SeeFood calls this)."""
from Algorithmia import ADK

VEGETABLES = {"carrot": "root", "potato": "tuber", "onion": "bulb", "lettuce": "leaf",
              "spinach": "leaf", "broccoli": "flower", "celery": "stem", "cabbage": "leaf",
              "beet": "root", "asparagus": "stem"}


def apply(input):
    name = str(input).strip().lower()
    return {"food": name, "is": "vegetable", "part": VEGETABLES.get(name, "unknown")}


algorithm = ADK(apply)
algorithm.init("carrot")
