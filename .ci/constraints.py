"""Print constraints.txt: the installed version of every package touchpoint-processor needs
(with its dev and embedded extras), from the virtualenv this runs in. `make constraints`."""

from __future__ import annotations

from importlib.metadata import Distribution, PackageNotFoundError, distribution

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

EXTRAS = ("dev", "embedded")


def _wanted(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in ("", *sorted(extras)))


def closure() -> dict[str, Distribution]:
    found: dict[str, tuple[Distribution, set[str]]] = {}
    todo = [Requirement(f"touchpoint-processor[{','.join(EXTRAS)}]")]
    while todo:
        req = todo.pop()
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            continue  # a dependency for another platform or Python
        name = canonicalize_name(req.name)
        known = found.get(name, (dist, set()))[1]
        if name in found and set(req.extras) <= known:
            continue
        extras = known | set(req.extras)
        found[name] = (dist, extras)
        todo += [r for r in map(Requirement, dist.requires or []) if _wanted(r, extras)]
    found.pop("touchpoint-processor", None)
    return {name: dist for name, (dist, _) in found.items()}


def main() -> None:
    print("# The versions the tests passed with; `make setup`, CI and the image install these.")
    print("# Written by `make constraints` (.ci/constraints.py) after a dependency changes.")
    for name, dist in sorted(closure().items()):
        print(f"{dist.metadata['Name']}=={dist.version}")


if __name__ == "__main__":
    main()
