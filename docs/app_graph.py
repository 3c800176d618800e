"""Draw the app dependency graph from the code's own imports, laid out in the layers of pyproject's import contracts.

    python docs/app_graph.py            print the section (Markdown with a Mermaid graph)
    python docs/app_graph.py --write    put it into docs/architecture.md, between its app-graph markers
    python docs/app_graph.py --check    exit 1 when docs/architecture.md shows another graph than the code has

`make app-graph` writes it; `make lint` checks it. Imports made by tests are left out, as the contracts leave them.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- app-graph:begin -->", "<!-- app-graph:end -->"
PACKAGE = "backstop"
TEST_IMPORTS = f"{PACKAGE}.*.tests.** -> {PACKAGE}.**"


@dataclass(frozen=True)
class Layer:
    packages: tuple[str, ...]  # short names: "accounts", "urls"
    independent: bool  # `a | b`: the packages may not import each other; `a : b`: they may


def contract_layers() -> list[Layer]:
    """The layers of the `layers` contract, top first."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    layers = []
    for raw in contract["layers"]:
        separator = ":" if ":" in raw else "|"
        names = [name.strip().strip("()").removeprefix(f"{PACKAGE}.") for name in raw.split(separator)]
        layers.append(Layer(packages=tuple(names), independent=separator == "|"))
    return layers


def contract_names() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return [contract["name"] for contract in config["contracts"]]


def production_graph() -> grimp.ImportGraph:
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    for found in graph.find_matching_direct_imports(import_expression=TEST_IMPORTS):
        graph.remove_import(importer=found["importer"], imported=found["imported"])
    return graph


def app_of(module: str) -> str:
    return module.split(".")[1]


def app_edges(graph: grimp.ImportGraph) -> dict[tuple[str, str], list[str]]:
    """Importing package -> imported package, with the module imports that make each edge."""
    edges: dict[tuple[str, str], list[str]] = {}
    for module in sorted(graph.modules):
        if module == PACKAGE:
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported != PACKAGE and app_of(module) != app_of(imported):
                edges.setdefault((app_of(module), app_of(imported)), []).append(f"{module} -> {imported}")
    return edges


def against_layers(importer: str, imported: str, layers: list[Layer]) -> bool:
    where = {name: (index, layer) for index, layer in enumerate(layers) for name in layer.packages}
    if importer not in where or imported not in where:
        return False  # a package outside the layers: only the cycle check covers it
    (importer_index, layer), (imported_index, _) = where[importer], where[imported]
    return imported_index < importer_index or (imported_index == importer_index and layer.independent)


def render() -> str:
    layers = contract_layers()
    graph = production_graph()
    edges = app_edges(graph)
    packages = sorted(app_of(m) for m in graph.find_children(PACKAGE))
    layered = {name for layer in layers for name in layer.packages}

    lines = ["```mermaid", "flowchart TB"]
    for index, layer in enumerate(layers, start=1):
        present = [name for name in layer.packages if name in packages]
        if not present:
            continue
        joiner = " | " if layer.independent else " : "
        lines.append(f'  subgraph layer{index}["{index}. {joiner.join(layer.packages)}"]')
        lines += [f"    {name}" for name in present]
        lines.append("  end")
    outside = [name for name in packages if name not in layered]
    if outside:
        lines.append('  subgraph outside["in no layer"]')
        lines += [f"    {name}" for name in outside]
        lines.append("  end")
    wrong = []
    for number, (importer, imported) in enumerate(sorted(edges)):
        lines.append(f"  {importer} --> {imported}")
        if against_layers(importer, imported, layers):
            wrong.append(number)
    if wrong:
        lines.append(f"  linkStyle {','.join(map(str, wrong))} stroke:red,stroke-width:2px")
    lines.append("```")

    lines += ["", "Layers, top first (a package may import the layers below its own; `a : b` may also import each"
              " other, `a | b` may not):", ""]
    for index, layer in enumerate(layers, start=1):
        below = ", ".join(name for lower in layers[index:] for name in lower.packages) or "nothing of backstop"
        joiner = " | " if layer.independent else " : "
        lines.append(f"{index}. `{joiner.join(layer.packages)}` may import: {below}")

    offending = [(pair, edges[pair]) for pair in sorted(edges) if against_layers(*pair, layers)]
    cycles = sorted(graph.nominate_cycle_breakers(PACKAGE))
    lines += ["", "Imports against the layers (red above):" if offending else "No import goes against the layers."]
    for (importer, imported), imports in offending:
        lines.append(f"- {importer} -> {imported}: " + "; ".join(f"`{i}`" for i in imports))
    lines += ["", "Cycles between packages: none." if not cycles else "Cycles between packages; removing these imports"
              " would break them:"]
    lines += [f"- `{importer} -> {imported}`" for importer, imported in cycles]
    lines += ["", "Contracts checked by `lint-imports` (`[tool.importlinter]` in pyproject.toml):", ""]
    lines += [f"- {name}" for name in contract_names()]
    return "\n".join(lines) + "\n"


def with_section(doc: str, section: str) -> str:
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{section}{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update docs/architecture.md")
    mode.add_argument("--check", action="store_true", help="fail when docs/architecture.md is out of date")
    args = parser.parse_args()
    section = render()
    if not (args.write or args.check):
        sys.stdout.write(section)
        return 0
    doc = DOC.read_text()
    if BEGIN not in doc or END not in doc:
        print(f"{DOC.name} has no {BEGIN} ... {END} markers", file=sys.stderr)
        return 1
    updated = with_section(doc, section)
    if args.write:
        DOC.write_text(updated)
        return 0
    if updated != doc:
        print(f"The app dependency graph in docs/{DOC.name} is not the one the code has: run `make app-graph`.",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
