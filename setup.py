"""Maps the top-level folders (gateway/, drivers/, headend/, contract/) into the
`askue` namespace, so the repository reads like DESIGN.md's layout while the
installed code imports as askue.gateway, askue.drivers, ..."""
from setuptools import find_packages, setup

ROOTS = ["contract", "drivers", "gateway", "headend"]
packages = ["askue"] + find_packages(include=["askue.*"])
package_dir = {"askue": "askue"}
for root in ROOTS:
    packages += ["askue." + p for p in find_packages(include=[root, root + ".*"])]
    package_dir["askue." + root] = root

setup(
    packages=sorted(set(packages)),
    package_dir=package_dir,
    package_data={"askue.contract": ["*.json"], "askue.headend": ["**/*.sql", "web/templates/*", "web/static/*"]},
    include_package_data=True,
)
