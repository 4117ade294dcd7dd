"""The results page's catalogue: the studies it shows (and which report figures of each) and the claims it
judges (which test, on which studies, tasks and architectures). Data, not code: the shipped catalogue is
``catalogue.yaml`` beside this module; a user's file with the same keys adds studies and claims to it
(``sfli results --catalogue``), a claim of the same name replacing the shipped one."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from sfli_core.config import ConfigError, Strict, load_yaml, validate

SHIPPED = Path(__file__).with_name("catalogue.yaml")


class ClaimSpec(Strict):
    claim: str = Field(min_length=1)
    source: str = Field(min_length=1)
    test: str  # a name of analysis.claims.TESTS (checked when the catalogue is loaded)
    studies: list[str] | None = None  # None: every study on the page
    tasks: list[str] | None = None  # None: every task of those studies
    archs: list[str] | None = None

    def selects(self, studies: list[str]) -> list[str]:
        """The page's studies this claim reads."""
        return [s for s in studies if self.studies is None or s in self.studies]


class Catalogue(Strict):
    studies: dict[str, list[str]] = Field(default_factory=dict)  # study → figure patterns
    claims: list[ClaimSpec] = Field(default_factory=list)

    def extended(self, other: Catalogue) -> Catalogue:
        """This catalogue with ``other``'s studies and claims added (``other`` wins on a name)."""
        replaced = {c.claim for c in other.claims}
        return Catalogue(studies={**self.studies, **other.studies},
                         claims=[c for c in self.claims if c.claim not in replaced] + list(other.claims))


def load_catalogue(path: str | Path, tests: list[str]) -> Catalogue:
    """Read and validate a catalogue file; every claim's test must be one of ``tests``."""
    catalogue = validate(Catalogue, load_yaml(path), str(path))
    for i, spec in enumerate(catalogue.claims):
        if spec.test not in tests:
            raise ConfigError(f"{path}: claims.{i}.test: unknown test '{spec.test}'; valid: {', '.join(tests)}")
    return catalogue
