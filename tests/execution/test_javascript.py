"""The Node.js runtime: a JavaScript algorithm speaks the same protocol, in the same sandbox."""
import pytest
from Algorithmia.errors import AlgorithmException

from tests.execution.conftest import bundle_files, publish

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_javascript_algorithm_round_trips_and_reports_errors(client, user):
    publish(user, "jsprobe", bundle_files("jsprobe"), language="javascript")
    algo = client.algo(f"{user.username}/jsprobe")
    assert algo.pipe("Ada").result == "Hello, Ada!"
    assert algo.pipe({"a": [1, 2]}).result == {"echoed": {"a": [1, 2]}}
    assert algo.pipe(b"\x01\x02\x03").result == b"\x03\x02\x01"
    printed = algo.set_options(stdout=True).pipe({"action": "print", "text": "from node"})
    assert printed.metadata.stdout == "from node\n"
    with pytest.raises(AlgorithmException) as raised:
        client.algo(f"{user.username}/jsprobe").pipe({"action": "raise"})
    assert raised.value.error_type == "AlgorithmError" and "js kaput" in raised.value.message
    assert client.algo(f"{user.username}/jsprobe").pipe("again").result == "Hello, again!"
