"""Maps the top-level folders (gateway/, drivers/, headend/, contract/) into the
`askue` namespace, so the repository reads like DESIGN.md's layout while the
installed code imports as askue.gateway, askue.drivers, ..."""
from setuptools import find_namespace_packages, setup

ROOTS = ["contract", "drivers", "gateway", "headend"]


def _packages(root: str) -> list[str]:
    # Namespace discovery so data-only folders (migrations, templates, static) ship too.
    found = find_namespace_packages(include=[root, root + ".*"])
    return [p for p in found if "__pycache__" not in p and ".vendor" not in p and "node_modules" not in p]


packages = ["askue"] + [p for p in find_namespace_packages(include=["askue.*"]) if "__pycache__" not in p]
package_dir = {"askue": "askue"}
for root in ROOTS:
    packages += ["askue." + p for p in _packages(root)]
    package_dir["askue." + root] = root

setup(
    packages=sorted(set(packages)),
    package_dir=package_dir,
    package_data={"": ["*.sql", "*.json", "*.html", "*.css", "*.js", "*.svg", "*.png", "*.yaml", "*.txt"]},
    include_package_data=True,
)
