"""Fruit: names the kind of fruit and what it is like (SeeFood calls this)."""
from Algorithmia import ADK

FRUITS = {"apple": ("pome", "red"), "pear": ("pome", "green"), "banana": ("berry", "yellow"),
          "grape": ("berry", "purple"), "orange": ("citrus", "orange"),
          "lemon": ("citrus", "yellow"), "cherry": ("drupe", "red"), "peach": ("drupe", "orange"),
          "tomato": ("berry", "red"), "strawberry": ("aggregate", "red")}


def apply(input):
    name = str(input).strip().lower()
    kind, color = FRUITS.get(name, ("unknown", "unknown"))
    return {"food": name, "is": "fruit", "kind": kind, "color": color}


algorithm = ADK(apply)
algorithm.init("apple")
