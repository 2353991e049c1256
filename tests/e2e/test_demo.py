"""The README's first command on a small scale: `lodestar demo` generates a shop and sets up
what an operations team would (computed attributes, a CLV fit, segments as tags), and a
profile shows them."""

from __future__ import annotations

import json

from harness import Workspace


def test_demo_sets_up_segments_tags_and_computed_attributes(tmp_path):
    ws = Workspace(tmp_path / "demo")
    ws.cli("demo", "--users", "400", "--days", "120", "--no-serve", timeout=600)
    listed = ws.cli("segments", "list", "--project", "demo").stdout
    for name in ["高价值用户", "潜力用户", "流失风险用户", "复购但60天未购"]:
        assert name in listed, listed
    models = ws.cli("models", "report", "--project", "demo").stdout
    assert "bg_nbd" in models or "pareto_nbd" in models, models
    # Some person is in a tag segment; their profile shows the tag and the computed attributes.
    seen_tag = False
    for person in range(1, 80):
        proc = ws.cli("person", "--project", "demo", "--id", str(person), check=False)
        if proc.returncode != 0:
            continue
        view = json.loads(proc.stdout)
        assert set(view["computed"]) == {"spend_90d", "orders", "last_order", "favourite_category"}
        assert view["timezone"]
        if view["tags"]:
            seen_tag = True
            assert any(t in ["高价值用户 High value", "潜力用户 Potential", "流失风险用户 At risk"] for t in view["tags"])
            assert view["segments"], view
            break
    assert seen_tag, "no profile among the first persons carries a tag"
