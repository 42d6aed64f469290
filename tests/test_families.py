"""Recipe families (core/recipes/<family>/ and core/recipes/registry.py): a family is one folder plus one registry line.

``fake_family`` (tests/fake_family/) declares two made-up recipes and everything about them; registering it the way the
line in ``registry.FAMILIES`` does makes it appear in the variant listing, in export (accepted or refused as it
declares), in the charts' colours and in the slow-variant causes, with no other edit anywhere.
"""

from __future__ import annotations

import json

import pytest

from core import charts, cli
from core.engine.evaluate import slow_notes
from core.errors import ExportError
from core.exporting.export import EXPORTERS, NOT_EXPORTED, export_variant
from core.exporting.snippets import RUNTIMES, SNIPPETS, snippet_from_readme
from core.recipes import RECIPES, expand, family_of, registry, resolve
from core.reporting.cells import LatencyCell
from core.reporting.results import VariantResult
from fake_family import CAUSE, COLOR, FAMILY, SLOW_NOTE


@pytest.fixture
def fake_registered():
    """The registry as it is with one more line in FAMILIES: ``FAMILY`` of tests/fake_family."""
    registry.install([*registry.FAMILIES, FAMILY])
    try:
        yield FAMILY
    finally:
        registry.install(registry.FAMILIES)


def timed(name: str, p50: float, notes: list[str]) -> VariantResult:
    cells = [LatencyCell(batch_size=1, seq_len=s, p50_ms=p50, p90_ms=p50 * 1.1, p99_ms=p50 * 1.2, mean_ms=p50, std_ms=0.1,
                         throughput_per_s=1000 / p50, forward_p50_ms=p50 * 0.9) for s in (16, 64)]
    return VariantResult(variant=name, size_bytes=1000, param_bytes=1000, build_s=0.1, cache_hit=False, load_s=0.1, peak_rss_bytes=10**8,
                         quality={}, latency=cells, notes=notes)


def test_every_family_declares_each_of_its_recipes_once_and_the_tables_come_from_them():
    names = [r.name for f in registry.FAMILIES for r in f.recipes]
    assert names == list(RECIPES) and len(set(names)) == len(names)
    for family in registry.FAMILIES:
        family.check()
        for recipe in family.recipes:
            assert family_of(recipe.name) is family and family_of(f"{recipe.name}:x=y") is family
    assert set(EXPORTERS) | set(NOT_EXPORTED) == set(RECIPES)
    assert {e.kind for e in EXPORTERS.values()} == set(SNIPPETS) == set(RUNTIMES)
    assert set(charts.RECIPE_COLORS) <= set(RECIPES) and charts.RECIPE_COLORS["fp32"] == charts.REFERENCE_COLOR


def test_slow_causes_are_the_families_own_structured_records():
    fp32 = timed("fp32", 10.0, [])
    qnn = timed("dynamic-int8:engine=qnnpack", 30.0, ["Engine qnnpack is the ARM/mobile kernel library: on this x86 CPU it is slow."])
    assert [c.code for c in registry.slow_causes(qnn, {})] == ["qnnpack-on-x86"]
    # the ONNX families do not explain a note the PyTorch family writes, and a recipe the registry does not know has no family causes
    assert registry.slow_causes(timed("onnx-int8", 30.0, qnn.notes), {}) == []
    assert registry.slow_causes(timed("gone-int8", 30.0, qnn.notes), {}) == []
    assert "likely cause: the qnnpack engine" in slow_notes(qnn, fp32, [1], {})[0]


def test_a_new_family_is_one_folder_and_one_registry_line(fake_registered, tiny_classifier_dir, tmp_path, capsys, monkeypatch):
    from core.storage.store import ModelStore

    # listed by `python -m core variants`, with its parameters and availability
    assert cli.main(["variants", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["fake-int8"]["available"] and rows["fake-int8"]["params"]["scale"]["default"] == "1.0" and rows["fake-int8"]["family"] == "fake"
    assert not rows["fake-int2"]["available"] and rows["fake-int2"]["reason"] == "fake-int2 needs a fake accelerator."
    assert list(rows)[:len(RECIPES) - 2] == [n for n in RECIPES if not n.startswith("fake-")]   # appended after the others
    assert resolve("fake-int8:scale=2.5")[2] == "fake-int8:scale=2.5" and "fake-int8" in expand("all", "classification")
    assert "fake-int8" not in expand("all", "embedding")

    # export refuses what the family says it cannot export (before building anything) and writes what it can
    with pytest.raises(ExportError, match="fake 2-bit weights"):
        export_variant(str(tiny_classifier_dir), "fake-int2", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    store = ModelStore(tmp_path / "store")
    done = export_variant(str(tiny_classifier_dir), "fake-int8:scale=2.5", tmp_path / "fake", store=store)
    assert done.meta["variant"]["family"] == "fake" and done.meta["recipe"]["scale"] == 2.5 and done.meta["runtime"] == ["numpy"]
    assert (done.folder / "fake.json").is_file() and (done.folder / "requirements.txt").read_text().startswith("numpy")
    code = snippet_from_readme((done.folder / "README.md").read_text())
    monkeypatch.chdir(done.folder)
    ns: dict = {}
    exec(compile(code, "fake snippet", "exec"), ns)
    assert ns["logits"].shape == (2, len(done.meta["postprocessing"]["labels"])) and (ns["logits"] == 2.5).all()

    # charts colour it, and its slow-variant cause comes from its own declaration
    assert charts.variant_colors(["fp32", "fake-int8"])["fake-int8"] == COLOR
    fp32, fake = timed("fp32", 10.0, []), timed("fake-int8", 40.0, [SLOW_NOTE])
    assert registry.slow_causes(fake, {}) == [CAUSE.find([SLOW_NOTE])]
    assert f"likely cause: {CAUSE.words}" in slow_notes(fake, fp32, [1], {})[0]


def test_unregistering_the_line_removes_the_family_everywhere(fake_registered):
    registry.install(registry.FAMILIES)
    assert "fake-int8" not in RECIPES and "fake-int8" not in EXPORTERS and "fake" not in SNIPPETS and "fake-int8" not in charts.RECIPE_COLORS
    with pytest.raises(ValueError, match="'fake-int8' of family 'fake' is declared by 'fake' too"):
        registry.install([*registry.FAMILIES, FAMILY, FAMILY])   # a recipe declared twice is refused, and the tables stay as they were
    assert "fake-int8" not in RECIPES


def test_a_family_is_named_one_way():
    """Its Family.name is the family of each of its recipes in the registry, in `variants` and in export metadata: no
    recipe declares a family of its own (the onnxruntime-genai family once showed as "onnx")."""
    from core.recipes import FAMILIES, RECIPES, family_of

    for family in FAMILIES:
        for recipe in family.recipes:
            assert recipe.family == "", f"{recipe.name} declares a family by hand"
            assert RECIPES[recipe.name].family == family.name == family_of(recipe.name).name
            assert RECIPES[recipe.name].describe()["family"] == family.name
    assert RECIPES["onnx-genai"].family == "onnxruntime-genai" and RECIPES["fp32"].family == "pytorch"
