import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from prompting.datasets.offline import MAX_CHARS, MIN_CHARS, dataset
from prompting.datasets.online import WikipediaPassages
from prompting.tasks import TASKS, replay

TEXT = "Lisbon is the capital of Portugal. " * 12


def test_offline_corpora_are_clean_and_deterministic():
    docs = dataset("pydoc").documents
    assert len(docs) > 300
    assert all(MIN_CHARS <= len(d.text) <= MAX_CHARS + 200 for d in docs)
    assert not any(">>>" in d.text or "**" in d.text for d in docs)
    assert dataset("pydoc").get(random.Random(4)) == dataset("pydoc").get(random.Random(4))
    code = dataset("stdlib").documents
    assert len(code) > 50 and all(d.text.startswith("def ") for d in code)
    problem = dataset("math").get(random.Random(1))
    assert dataset("math").by_id(problem.id) == problem and "$" not in problem.text


class Wiki:
    """A loopback stand-in for Wikipedia's REST API."""

    def __init__(self):
        self.n = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.n += 1
                title = (
                    f"Page {outer.n}"
                    if self.path.endswith("/random/summary")
                    else self.path.rsplit("/", 1)[1].replace("%20", " ")
                )
                data = json.dumps({"title": title, "extract": f"{title}. {TEXT}"}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_online_source_caches_and_replays_offline(tmp_path):
    wiki = Wiki()
    source = WikipediaPassages(str(tmp_path), base_url=wiki.url)
    qa = TASKS["qa"](passages=source)
    challenge = qa.finish(qa.draft(3))
    assert challenge.source_id == "wiki:Page 1" and "Lisbon" in challenge.context
    wiki.close()
    # Offline now: a new instance reads the cache; replay and fallback both work.
    offline = WikipediaPassages(str(tmp_path), base_url=wiki.url, timeout=0.5)
    assert replay(challenge, passages=offline) == challenge
    assert offline.get(random.Random(0)).id == "wiki:Page 1"
    with pytest.raises(RuntimeError, match="nothing cached"):
        WikipediaPassages(str(tmp_path / "empty"), base_url=wiki.url, timeout=0.5).get(
            random.Random(0)
        )
