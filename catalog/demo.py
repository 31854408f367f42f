"""Demo algorithms for `make run`: built and published from catalog/demo/, idempotently."""
import io
import tarfile
from pathlib import Path

from catalog import builder, services
from catalog.models import Algorithm, Build, Category

DEMO_DIR = Path(__file__).resolve().parent / "demo"
CATEGORIES = [("text", "Text"), ("vision", "Computer vision"), ("utilities", "Utilities")]
DEMOS = [
    {"name": "hello", "label": "Hello", "tagline": "Greets whoever you name",
     "royalty_microcredits": 1_000_000, "categories": ["utilities"], "tags": ["demo", "text"],
     "sample_input": '"Ada"', "sample_output": '"Hello, Ada!"'},
    {"name": "sentiment", "label": "Sentiment", "tagline": "Scores English text from -1 to 1",
     "royalty_microcredits": 2_000_000, "categories": ["text"], "tags": ["nlp", "demo"],
     "sample_input": '"I love this, it is great"',
     "sample_output": '{"sentiment": 1.0, "positive": 2, "negative": 0}'},
    {"name": "invert", "label": "Invert", "tagline": "Binary in, binary out",
     "royalty_microcredits": 0, "categories": ["utilities"], "tags": ["binary", "demo"],
     "sample_input": "16", "sample_output": "(16 bytes)"},
    {"name": "fruit", "label": "Fruit", "tagline": "What kind of fruit is it?",
     "royalty_microcredits": 500_000, "categories": ["vision"], "tags": ["food", "demo"],
     "sample_input": '"banana"', "sample_output": '{"food": "banana", "is": "fruit"}'},
    {"name": "vegetable", "label": "Vegetable", "tagline": "Which part of the plant is it?",
     "royalty_microcredits": 500_000, "categories": ["vision"], "tags": ["food", "demo"],
     "sample_input": '"carrot"', "sample_output": '{"food": "carrot", "is": "vegetable"}'},
    {"name": "seefood", "label": "SeeFood", "tagline": "Fruit or vegetable? A composition",
     "royalty_microcredits": 1_000_000, "categories": ["vision"], "tags": ["food", "demo"],
     "pipeline_enabled": True, "sample_input": '"banana"',
     "sample_output": '{"verdict": "fruit", "details": {...}}'},
]


def _bundle(name: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(DEMO_DIR / name, arcname=".")
    return buffer.getvalue()


def seed_demo_algorithms(*, user, stdout) -> None:
    for slug, name in CATEGORIES:
        Category.objects.get_or_create(slug=slug, defaults={"name": name})
    for demo in DEMOS:
        if Algorithm.objects.filter(owner_name=user.username, name=demo["name"],
                                    versions__isnull=False).exists():
            continue
        algorithm = (Algorithm.objects.filter(owner_name=user.username, name=demo["name"]).first()
                     or services.algorithm_create(
                         actor=user, owner=user.username, name=demo["name"], label=demo["label"],
                         tagline=demo["tagline"], royalty_microcredits=demo["royalty_microcredits"],
                         categories=demo["categories"], tags=demo["tags"],
                         pipeline_enabled=demo.get("pipeline_enabled", False)))
        services.source_bundle_upload(algorithm=algorithm, actor=user,
                                      chunks=iter([_bundle(demo["name"])]))
        build = services.build_create(algorithm=algorithm, actor=user)
        status = builder.build_run(build.pk)  # here and now: `make run` waits for it once
        if status != Build.Status.SUCCEEDED:
            stdout.write(f"Demo build of {algorithm.path} failed; see its build log.")
            continue
        services.version_publish(algorithm=algorithm, actor=user, version_type="minor",
                                 release_notes="First release.",
                                 sample_input=demo["sample_input"],
                                 sample_output=demo["sample_output"])
        stdout.write(f"Published demo algorithm {algorithm.path}/0.1.0.")
